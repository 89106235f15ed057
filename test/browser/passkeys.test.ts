// Passkeys in real Chromium, with the DevTools protocol's virtual authenticator (CTAP2, resident keys, user
// verification): register and log in with a password, add a passkey, log out, sign in with it (a session with amr
// pop+mfa), be refused on an origin the service does not allow, remove it, and be refused with it afterwards.
// The app is served on localhost (a secure context, so WebAuthn works over plain HTTP) under the page CSP.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { desc, eq } from 'drizzle-orm';
import type { CDPSession, Page } from 'playwright-core';
import t from 'tap';
import { sessions, users } from '../../src/db/schema.js';
import { WEBAUTHN_BROWSER_URL } from '../../src/modules/web/index.js';
import { buildTestApp } from '../helpers/app.js';
import { freePort } from '../helpers/server-process.js';
import { COOKIES, claimsOf, eventsOf, STRONG_PASSWORD, uniqueEmail } from '../helpers/session-flow.js';
import { ARTIFACTS, launchChromium, watchContextProblems } from './flow.js';

const WAIT = { timeout: 10_000 };

const ready = (page: Page) => page.waitForSelector('body[data-ready="true"]', WAIT);
const session = (page: Page, state: 'signed-in' | 'signed-out') =>
  page.waitForSelector(`body[data-session="${state}"]`, WAIT);
const status = (page: Page, text: RegExp | string) => page.locator('#status', { hasText: text }).waitFor(WAIT);
const passkeyCount = (page: Page, count: number) => page.waitForSelector(`body[data-passkeys="${count}"]`, WAIT);
async function screenshot(page: Page, step: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `passkeys-${step}.png`), fullPage: true });
}

async function virtualAuthenticator(page: Page): Promise<{ cdp: CDPSession; authenticatorId: string }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

/** Clicks "Sign in with a passkey" and returns the answer of POST /auth/passkeys/login. */
async function passkeySignIn(page: Page) {
  const answer = page.waitForResponse(
    (response) => new URL(response.url()).pathname === '/auth/passkeys/login' && response.request().method() === 'POST',
    WAIT,
  );
  await page.click('#passkey-login');
  const response = await answer;
  return { status: response.status(), body: (await response.json()) as Record<string, unknown> };
}

t.test('passkeys in Chromium: add, sign in, wrong origin, removal', async (t) => {
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const webauthn = { ISSUER: origin, WEBAUTHN_RP_ID: 'localhost', WEBAUTHN_ORIGINS: origin };
  const { app, databaseUrl } = await buildTestApp(t, { env: webauthn });
  await app.listen({ port, host: '127.0.0.1' });

  // The same service and database on another port, which allows only the first origin.
  const otherPort = await freePort();
  const otherOrigin = `http://localhost:${otherPort}`;
  const { app: other } = await buildTestApp(t, { env: webauthn, databaseUrl });
  await other.listen({ port: otherPort, host: '127.0.0.1' });

  const vendor = await app.inject({ url: WEBAUTHN_BROWSER_URL });
  t.equal(vendor.statusCode, 200, 'the browser library is served');
  t.match(vendor.headers['content-type'], 'application/javascript');
  t.match(vendor.headers['content-security-policy'], /script-src 'self'/, 'under the page CSP');
  t.match(vendor.body, /SimpleWebAuthnBrowser/);
  const module = await app.inject({ url: '/passkeys.js' });
  t.equal(module.statusCode, 200, 'web/passkeys.js is served');
  t.notMatch((await app.inject({ url: '/' })).body, /<script(?![^>]*\ssrc=)|\sstyle=|\son[a-z]+=/i, 'nothing inline');

  const browser = await launchChromium(t);
  const context = await browser.newContext({ viewport: { width: 1000, height: 1400 } });
  t.teardown(() => context.close());
  const problems: string[] = [];
  // The refusals this test provokes on purpose are logged by Chromium as failed loads (401).
  await watchContextProblems(context, problems, /^401$/);
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  await ready(page);
  const { cdp, authenticatorId } = await virtualAuthenticator(page);

  // Register and log in with the password.
  const email = uniqueEmail('passkey');
  await page.fill('#register-form [name=email]', email);
  await page.fill('#register-form [name=password]', STRONG_PASSWORD);
  await page.click('#register-form button[type=submit]');
  await status(page, /Registered/);
  await page.fill('#login-form [name=password]', STRONG_PASSWORD);
  await page.click('#login-form button[type=submit]');
  await session(page, 'signed-in');
  await passkeyCount(page, 0);
  t.ok(await page.isVisible('#passkeys-empty'), 'no passkeys yet');

  // Add a passkey: the authenticator now holds a resident credential for localhost.
  await page.fill('#passkey-form [name=name]', 'Virtual key');
  await page.click('#passkey-form button[type=submit]');
  await status(page, /Passkey added/);
  await passkeyCount(page, 1);
  t.match(await page.textContent('#passkeys tr'), /Virtual key/, 'listed by name');
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  t.equal(credentials.length, 1, 'one credential on the authenticator');
  t.equal(credentials[0]?.isResidentCredential, true, 'a discoverable (resident) credential');
  t.equal(credentials[0]?.rpId, 'localhost');
  const [user] = await app.db.select({ id: users.id }).from(users).where(eq(users.email, email));
  if (!user) throw new Error('no user row');
  t.equal((await eventsOf(app, user.id, 'passkey_added')).length, 1, 'event passkey_added');
  await screenshot(page, '1-added');

  // Log out, and sign in with the passkey alone.
  await page.click('#logout');
  await session(page, 'signed-out');
  const signedIn = await passkeySignIn(page);
  t.equal(signedIn.status, 200, 'POST /auth/passkeys/login: 200');
  t.notOk(signedIn.body.accessToken, 'cookie transport: no token in the body');
  await session(page, 'signed-in');
  await status(page, `Signed in with a passkey as ${email}.`);
  t.equal(await page.textContent('#profile-email'), email, 'the profile of the passkey owner');
  await passkeyCount(page, 1);
  t.not(await page.textContent('#passkeys tr td:nth-child(3)'), 'never', 'the list shows its last use');
  await page.click('#reload-profile');
  await status(page, 'Profile loaded.');
  const access = (await context.cookies(origin)).find((cookie) => cookie.name === COOKIES.access);
  t.ok(access, 'the access cookie is set');
  const claims = claimsOf(access?.value ?? '');
  t.same(claims.amr, ['pop', 'mfa'], 'the access token says pop, mfa');
  const [row] = await app.db
    .select({ id: sessions.id, amr: sessions.amr })
    .from(sessions)
    .where(eq(sessions.userId, user.id))
    .orderBy(desc(sessions.createdAt))
    .limit(1);
  t.equal(row?.id, claims.sid, 'the newest session is this one');
  t.same(row?.amr, ['pop', 'mfa'], 'and the session row keeps amr pop, mfa');
  t.equal((await eventsOf(app, user.id, 'passkey_login')).length, 1, 'event passkey_login');
  await screenshot(page, '2-signed-in-with-passkey');

  // A page on an origin the service does not allow: the browser signs, the service refuses.
  await page.click('#logout');
  await session(page, 'signed-out');
  await page.goto(`${otherOrigin}/`);
  await ready(page);
  const refused = await passkeySignIn(page);
  t.equal(refused.status, 401, 'a wrong origin: 401');
  t.equal(refused.body.code, 'PASSKEY_INVALID');
  await status(page, /That passkey was not accepted/);
  t.equal(await page.getAttribute('body', 'data-session'), 'signed-out', 'still signed out');
  await screenshot(page, '3-wrong-origin');

  // Back on the right origin: sign in again, remove the passkey, and it signs in no more.
  await page.goto(`${origin}/`);
  await ready(page);
  t.equal((await passkeySignIn(page)).status, 200, 'the right origin still signs in');
  await session(page, 'signed-in');
  await passkeyCount(page, 1);
  await page.click('#passkeys .remove-passkey');
  await status(page, /Passkey removed/);
  await passkeyCount(page, 0);
  t.equal((await eventsOf(app, user.id, 'passkey_removed')).length, 1, 'event passkey_removed');
  await page.click('#logout');
  await session(page, 'signed-out');
  const removed = await passkeySignIn(page);
  t.equal(removed.status, 401, 'a removed passkey: 401');
  t.equal(removed.body.code, 'PASSKEY_INVALID');
  await status(page, /That passkey was not accepted/);
  t.equal(await page.getAttribute('body', 'data-session'), 'signed-out', 'still signed out');
  await screenshot(page, '4-removed');

  t.same(problems, [], 'no page errors, no CSP violations');
});
