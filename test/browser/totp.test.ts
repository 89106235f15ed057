// Two-step verification in real Chromium, same origin, under the page CSP: TOTP set-up with a QR code drawn by the
// page itself (web/qr.js, checked module by module against the `qrcode` package), recovery codes, the login's second
// step with a code, a wrong code, a recovery code (once), an ended second step, new recovery codes, turning it off.
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import QRCode from 'qrcode';
import t from 'tap';
import type { SessionState } from '../../client/auth-client.js';
import { totpCode, totpStep } from '../../src/modules/mfa/totp.js';
import { buildTestApp } from '../helpers/app.js';
import { TestClock } from '../helpers/clock.js';
import { freePort } from '../helpers/server-process.js';
import { STRONG_PASSWORD, uniqueEmail } from '../helpers/session-flow.js';
import { ARTIFACTS, launchChromium, watchContextProblems } from './flow.js';

const WAIT = { timeout: 10_000 };
const WRONG_CODE = 'That code is wrong or was already used.';

interface QrModule {
  encodeQr(
    text: string,
    options?: { errorCorrectionLevel?: 'L' | 'M' | 'Q' | 'H' },
  ): { version: number; size: number; mask: number; modules: Uint8Array };
}
// web/qr.js is a browser module without imports: Node loads it as it is (a non-literal specifier keeps it untyped).
const qrModule = pathToFileURL(path.resolve(import.meta.dirname, '../../web/qr.js')).href;
const loadQr = async () => (await import(qrModule)) as QrModule;

/** The `qrcode` package's matrix for `text` in byte mode (the mode web/qr.js uses), as 0/1 by row. */
function referenceQr(text: string, errorCorrectionLevel: 'L' | 'M' | 'Q' | 'H') {
  const qr = QRCode.create([{ data: Buffer.from(text, 'utf8'), mode: 'byte' }], { errorCorrectionLevel });
  return { version: qr.version, mask: qr.maskPattern, size: qr.modules.size, modules: Array.from(qr.modules.data) };
}

// The qrcode package's byte capacity of each version (internal modules of qrcode 1.5, untyped).
const requireQr = createRequire(import.meta.url);
const qrVersion = requireQr('qrcode/lib/core/version.js') as {
  getCapacity(version: number, level: unknown): number;
};
const qrLevels = requireQr('qrcode/lib/core/error-correction-level.js') as Record<'L' | 'M' | 'Q' | 'H', unknown>;

t.test('web/qr.js encodes as the qrcode package does, in every version and level', async (t) => {
  const { encodeQr } = await loadQr();
  const url = 'otpauth://totp/auth.example.com:ann%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Exa';
  const texts: { text: string; level: 'L' | 'M' | 'Q' | 'H' }[] = [];
  for (const level of ['L', 'M', 'Q', 'H'] as const) {
    // Each version at its capacity, and up to version 10 (an otpauth URL needs 5 to 8) one byte over: the version
    // choice at each boundary.
    for (let version = 1; version <= 40; version++) {
      const capacity = qrVersion.getCapacity(version, qrLevels[level]);
      texts.push({ text: url.repeat(40).slice(0, capacity), level });
      if (version <= 10) texts.push({ text: `${url.repeat(40).slice(1, capacity)}é`, level });
    }
    // Short texts (masks vary most there), multi-byte UTF-8 among them.
    for (let length = 1; length <= 40; length++) texts.push({ text: `€😀${url}`.slice(0, length), level });
  }
  const versions = new Set<string>();
  let differ = 0;
  for (const { text, level } of texts) {
    const reference = referenceQr(text, level);
    const mine = encodeQr(text, { errorCorrectionLevel: level });
    const same =
      mine.version === reference.version &&
      mine.mask === reference.mask &&
      mine.size === reference.size &&
      Array.from(mine.modules).every((module, i) => module === reference.modules[i]);
    if (!same && differ++ < 5) t.fail(`level ${level}, ${text.length} characters: version ${mine.version} differs`);
    versions.add(`${level}${reference.version}`);
  }
  t.equal(differ, 0, `${texts.length} texts: the same version, mask and modules`);
  t.equal(versions.size, 160, 'all 40 versions in each of the 4 levels were compared');
  t.throws(() => encodeQr('x'.repeat(3_000), { errorCorrectionLevel: 'L' }), /too long/, 'too long is an error');
});

const status = (page: Page, text: RegExp | string) => page.locator('#status', { hasText: text }).waitFor(WAIT);
const ready = (page: Page) => page.waitForSelector('body[data-ready="true"]', WAIT);
const session = (page: Page, state: 'signed-in' | 'signed-out') =>
  page.waitForSelector(`body[data-session="${state}"]`, WAIT);
const clearStatus = (page: Page) =>
  page.locator('#status').evaluate((element) => {
    (element as unknown as { textContent: string }).textContent = '';
  });
async function screenshot(page: Page, step: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `totp-${step}.png`), fullPage: true });
}

/** The dark modules an <svg> of web/qr.js draws: its path is `M x y h n v1 h-n z` runs, after a quiet zone of 4. */
function drawnModules(d: string, size: number): number[] {
  const modules = new Array<number>(size * size).fill(0);
  for (const [, x, y, run] of d.matchAll(/M(\d+) (\d+)h(\d+)v1h-\3z/g)) {
    for (let i = 0; i < Number(run); i++) modules[(Number(y) - 4) * size + Number(x) - 4 + i] = 1;
  }
  return modules;
}

t.test('two-step verification in Chromium: set up, log in with a code or a recovery code, turn off', async (t) => {
  const clock = new TestClock();
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const { app } = await buildTestApp(t, { clock, env: { APP_URL: origin } });
  await app.listen({ port, host: '127.0.0.1' });
  const browser = await launchChromium(t);
  const context = await browser.newContext({ viewport: { width: 1000, height: 1400 } });
  t.teardown(() => context.close());
  const problems: string[] = [];
  await watchContextProblems(context, problems, /^401$/);
  const elsewhere: string[] = [];
  context.on('request', (request) => {
    if (!request.url().startsWith(`${origin}/`)) elsewhere.push(request.url());
  });
  const page = await context.newPage();

  let secret = '';
  /** A code of a step not used yet: the clock moves on 30 s first (a code is accepted once). */
  const nextCode = () => {
    clock.advance(30_000);
    return totpCode(secret, totpStep(clock.now()));
  };
  const logIn = async (email: string) => {
    await clearStatus(page);
    await page.fill('#login-form [name=email]', email);
    await page.fill('#login-form [name=password]', STRONG_PASSWORD);
    await page.click('#login-form button[type=submit]');
  };
  const secondStep = async () => {
    await page.waitForSelector('body[data-login-step="mfa"]', WAIT);
    await page.locator('#mfa-login-form').waitFor({ state: 'visible', ...WAIT });
  };
  const submitSecondStep = async (value: string) => {
    await clearStatus(page);
    const field = (await page.isVisible('#mfa-login-recovery')) ? 'recoveryCode' : 'code';
    await page.fill(`#mfa-login-form [name=${field}]`, value);
    await page.click('#mfa-login-form button[type=submit]');
  };
  const sessionCookies = async () =>
    (await context.cookies([origin, `${origin}/auth`])).filter((cookie) =>
      /access_token|refresh_token|csrf_token/.test(cookie.name),
    );
  const logOut = async () => {
    await page.click('#logout');
    await session(page, 'signed-out');
  };

  // Register and log in (one step: TOTP is off).
  const email = uniqueEmail('totp');
  await page.goto(`${origin}/`);
  await ready(page);
  await page.fill('#register-form [name=email]', email);
  await page.fill('#register-form [name=password]', STRONG_PASSWORD);
  await page.click('#register-form button[type=submit]');
  await status(page, /Registered/);
  await logIn(email);
  await session(page, 'signed-in');
  t.equal(await page.textContent('#profile-mfa'), 'Off', 'the profile: two-step verification off');
  t.ok(await page.isVisible('#mfa-setup-form'), '"Set up" is offered');

  // Set up: a wrong password first, then the QR code and the key.
  await page.fill('#mfa-setup-form [name=currentPassword]', 'not my password at all');
  await page.click('#mfa-setup-form button[type=submit]');
  await status(page, 'That password is wrong.');
  t.ok(await page.isHidden('#mfa-enable-form'), 'a wrong password shows no key');
  const setupAnswer = page.waitForResponse((response) => response.url() === `${origin}/auth/mfa/totp/setup`);
  await page.fill('#mfa-setup-form [name=currentPassword]', STRONG_PASSWORD);
  await page.click('#mfa-setup-form button[type=submit]');
  const { otpauthUrl, secret: issued } = (await (await setupAnswer).json()) as { otpauthUrl: string; secret: string };
  await page.locator('#mfa-enable-form').waitFor({ state: 'visible', ...WAIT });
  secret = ((await page.textContent('#mfa-secret')) ?? '').replace(/\s/g, '');
  t.equal(secret, issued, 'the page shows the key for manual entry');
  t.match(otpauthUrl, `secret=${secret}`, 'the otpauth URL holds the key');

  // The QR code is an inline <svg> drawn by the page, the same matrix as the qrcode package's for the URL.
  const svg = page.locator('#mfa-qr svg');
  t.equal(await page.locator('#mfa-qr img').count(), 0, 'no <img>: nothing is fetched for the QR code');
  const size = Number(await svg.getAttribute('data-size'));
  const drawn = drawnModules((await svg.locator('path').getAttribute('d')) ?? '', size);
  const reference = referenceQr(otpauthUrl, 'M');
  t.equal(size, reference.size, `the QR code has the reference size (version ${reference.version})`);
  t.same(drawn, reference.modules, 'the page draws, module by module, the QR code of the otpauth URL');
  t.equal(Number(await svg.getAttribute('data-mask')), reference.mask, 'with the same mask');
  const box = await svg.boundingBox();
  t.ok(box && box.width >= 150 && Math.abs(box.width - box.height) < 1, 'it is drawn square and large enough');
  await screenshot(page, '1-setup');

  // Enable: a wrong code, then the right one; ten recovery codes, shown once.
  await page.fill('#mfa-enable-form [name=code]', '12345');
  await page.click('#mfa-enable-form button[type=submit]');
  await status(page, WRONG_CODE);
  await page.fill('#mfa-enable-form [name=code]', totpCode(secret, totpStep(clock.now())));
  await page.click('#mfa-enable-form button[type=submit]');
  await status(page, /Two-step verification is on/);
  await page.locator('#mfa-recovery').waitFor({ state: 'visible', ...WAIT });
  const recoveryCodes = await page.locator('#mfa-recovery-codes li').allTextContents();
  t.equal(recoveryCodes.length, 10, 'ten recovery codes are shown');
  t.equal(new Set(recoveryCodes).size, 10, 'all different');
  t.match(await page.textContent('#mfa-recovery'), /Store them somewhere safe/, 'with a hint to store them');
  t.equal(await page.textContent('#profile-mfa'), 'On', 'the profile: two-step verification on');
  t.ok(await page.isHidden('#mfa-enable-form'), 'the key and its QR code are gone');
  t.equal(await page.locator('#mfa-qr svg').count(), 0, 'the QR code is out of the page');
  t.ok(await page.isVisible('#mfa-manage-form'), '"Turn off" and "New recovery codes" are offered');
  await screenshot(page, '2-recovery-codes');
  await page.click('#mfa-recovery-done');
  t.ok(await page.isHidden('#mfa-recovery'), 'the codes can be put away');
  t.equal(await page.locator('#mfa-recovery-codes li').count(), 0, 'and leave the page');

  // Log out, log in: the second step; no session before it.
  await logOut();
  await logIn(email);
  await secondStep();
  t.ok(await page.isHidden('#login-form'), 'the password step gives way to the second step');
  t.equal(await page.getAttribute('body', 'data-session'), 'signed-out', 'not signed in yet');
  t.same(await sessionCookies(), [], 'no session cookie before the second step');
  await screenshot(page, '3-second-step');
  const current = totpCode(secret, totpStep(clock.now()));
  const wrong = ['000000', '111111', '222222'].find(
    (code) => ![-1, 0, 1].some((d) => totpCode(secret, totpStep(clock.now()) + d) === code),
  )!;
  await submitSecondStep(wrong);
  await status(page, WRONG_CODE);
  t.ok(await page.isVisible('#mfa-login-form'), 'a wrong code keeps the second step');
  await submitSecondStep(current);
  await status(page, WRONG_CODE);
  t.pass('the code that enabled TOTP is spent');
  await submitSecondStep(nextCode());
  await session(page, 'signed-in');
  await status(page, `Logged in as ${email}.`);
  t.same(
    await page.evaluate(() =>
      ['#login-form', '#mfa-login-form'].map(
        (selector) =>
          (
            globalThis as unknown as { document: { querySelector(s: string): { hidden: boolean } } }
          ).document.querySelector(selector).hidden,
      ),
    ),
    [false, true],
    'the next logout finds the password step, not the second one',
  );

  // The session is held as after a one-step login: cookies, the kept state, reload, refresh.
  const cookies = await sessionCookies();
  t.same(cookies.map((cookie) => cookie.httpOnly).sort(), [false, true, true], 'access, refresh (HttpOnly), csrf');
  const access = cookies.find((cookie) => /access_token/.test(cookie.name))!;
  const claims = JSON.parse(Buffer.from(access.value.split('.')[1]!, 'base64url').toString()) as { amr: string[] };
  t.same(claims.amr, ['pwd', 'otp', 'mfa'], 'the access token says password and one-time code');
  const stored = JSON.parse(
    (await page.evaluate(
      (key) =>
        (globalThis as unknown as { sessionStorage: { getItem(key: string): string | null } }).sessionStorage.getItem(
          key,
        ),
      `auth-client:${origin}`,
    )) ?? 'null',
  ) as SessionState | null;
  t.match(stored?.csrfToken, /^[\w-]+\.[\w-]+$/, 'the tab keeps the csrf value, as after a one-step login');
  t.equal(stored?.user.email, email, 'and the user');
  await page.reload();
  await ready(page);
  await session(page, 'signed-in');
  t.equal(await page.textContent('#profile-mfa'), 'On', 'a reload keeps the session');
  const refreshed = await page.evaluate(async () => {
    const { createAuthClient } = await import('/client/auth-client.js' as string);
    const client = createAuthClient({ lockName: 'test-refresh' });
    await client.start();
    const ok = await client.refresh();
    client.close();
    return ok;
  });
  t.equal(refreshed, true, 'the session refreshes');
  await page.click('#reload-profile');
  await status(page, /Profile loaded/);

  // A recovery code logs in once.
  await logOut();
  await logIn(email);
  await secondStep();
  await page.click('#mfa-login-switch');
  t.ok(await page.isVisible('#mfa-login-form [name=recoveryCode]'), '"Use a recovery code" asks for one');
  await screenshot(page, '4-recovery-step');
  await submitSecondStep(recoveryCodes[0]!);
  await session(page, 'signed-in');
  t.pass('a recovery code signs in');
  await logOut();
  await logIn(email);
  await secondStep();
  await page.click('#mfa-login-switch');
  await submitSecondStep(recoveryCodes[0]!);
  await status(page, WRONG_CODE);
  t.equal(await page.getAttribute('body', 'data-session'), 'signed-out', 'the same recovery code is refused again');

  // An ended second step (here: expired) sends back to the password step.
  clock.advance(301_000);
  await page.click('#mfa-login-switch');
  await submitSecondStep(nextCode());
  await status(page, 'Please log in again.');
  t.ok(await page.isVisible('#login-form'), 'back to the password step');
  t.ok(await page.isHidden('#mfa-login-form'), 'the second step is gone');
  t.equal(await page.inputValue('#login-form [name=email]'), email, 'the email stays filled in');

  // Log in again; new recovery codes; the old ones stop working.
  await logIn(email);
  await secondStep();
  await submitSecondStep(nextCode());
  await session(page, 'signed-in');
  await page.fill('#mfa-manage-form [name=currentPassword]', STRONG_PASSWORD);
  await page.fill('#mfa-manage-form [name=code]', nextCode());
  await page.click('#mfa-manage-form button[value=recovery-codes]');
  await status(page, /New recovery codes/);
  const newCodes = await page.locator('#mfa-recovery-codes li').allTextContents();
  t.equal(newCodes.length, 10, 'ten new recovery codes');
  t.notOk(
    newCodes.some((code) => recoveryCodes.includes(code)),
    'none of them is an old one',
  );
  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: STRONG_PASSWORD } });
  const old = await app.inject({
    method: 'POST',
    url: '/auth/mfa/verify',
    payload: { mfaToken: login.json().mfaToken, recoveryCode: recoveryCodes[1] },
  });
  t.equal(old.json().code, 'MFA_CODE_INVALID', 'an old recovery code no longer works');

  // Turn off: a wrong code, then the right one.
  await page.fill('#mfa-manage-form [name=currentPassword]', STRONG_PASSWORD);
  await page.fill('#mfa-manage-form [name=code]', wrong);
  await page.click('#mfa-manage-form button[value=disable]');
  await status(page, WRONG_CODE);
  t.equal(await page.textContent('#profile-mfa'), 'On', 'a wrong code leaves it on');
  await page.fill('#mfa-manage-form [name=currentPassword]', STRONG_PASSWORD);
  await page.fill('#mfa-manage-form [name=code]', nextCode());
  await page.click('#mfa-manage-form button[value=disable]');
  await status(page, /Two-step verification is off/);
  t.equal(await page.textContent('#profile-mfa'), 'Off', 'the profile: off');
  t.ok(await page.isVisible('#mfa-setup-form'), '"Set up" is offered again');
  t.ok(await page.isHidden('#mfa-recovery'), 'no recovery codes shown');
  await screenshot(page, '5-off');

  // One step again.
  await logOut();
  await logIn(email);
  await session(page, 'signed-in');
  t.equal(await page.getAttribute('body', 'data-login-step'), 'password', 'no second step');

  t.same(elsewhere, [], 'the page fetched nothing from another origin');
  t.same(problems, [], 'no page errors, no CSP violations');
});
