// The browser flow in real Chromium, run against one deployment (same origin, or a frontend on another host):
// register, log in, profile, sessions, silent refresh, one refresh for five tabs, password change, logout.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page, type Request, type Response } from 'playwright-core';
import type { Test } from 'tap';
import type { SessionState } from '../../client/auth-client.js';
import type { App } from '../../src/app.js';
import type { CookieNames } from '../../src/plugins/cookies.js';
import { STRONG_PASSWORD, uniqueEmail } from '../helpers/session-flow.js';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ARTIFACTS = path.resolve(import.meta.dirname, '.artifacts');
/** Short enough for two expiries in a test: refreshes come a quarter of it (4 s) before expiry. */
export const ACCESS_TOKEN_TTL = 16;

export type FlowTest = Test;

/** What the page-side callbacks touch, typed without the DOM lib (this program is typed for Node). */
interface PageGlobals {
  document: {
    cookie: string;
    querySelector(selector: string): { textContent: string | null } | null;
    querySelectorAll(selector: string): { length: number };
  };
  sessionStorage: { getItem(key: string): string | null };
}

/** The client's state in a tab's sessionStorage (kept per origin of the service). */
async function storedState(page: Page, deployment: Deployment): Promise<SessionState | null> {
  const raw = await page.evaluate(
    (key) => (globalThis as unknown as PageGlobals).sessionStorage.getItem(key),
    `auth-client:${deployment.authUrl}`,
  );
  return raw === null ? null : (JSON.parse(raw) as SessionState);
}

/**
 * Collects what a browser context's pages report: page errors, CSP violations (turned into console errors by an init
 * script, so none goes unnoticed) and console errors. Chromium logs every 4xx answer as a failed resource load:
 * those whose status `expectedStatuses` matches are the test's own doing.
 */
export async function watchContextProblems(
  context: BrowserContext,
  problems: string[],
  expectedStatuses: RegExp,
): Promise<void> {
  await context.addInitScript(() => {
    const page = globalThis as unknown as {
      addEventListener(
        type: string,
        listener: (event: { violatedDirective: string; blockedURI: string }) => void,
      ): void;
      console: Console;
    };
    page.addEventListener('securitypolicyviolation', (event) =>
      page.console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`),
    );
  });
  context.on('weberror', (error) => problems.push(`pageerror: ${error.error().message}`));
  context.on('console', (message) => {
    const status = /status of (\d{3})/.exec(message.text())?.[1];
    if (message.type() === 'error' && !(status && expectedStatuses.test(status))) {
      problems.push(`console: ${message.text()}`);
    }
  });
}

/** Launches Chromium; a missing binary fails the test with what to do (CI installs it), never skips. */
export async function launchChromium(t: FlowTest, args: string[] = []): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}: install it (apt-get install -y chromium; .ci/run does) ` +
        'or set CHROMIUM_PATH. The browser tests need a real browser and do not skip.',
    );
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-dev-shm-usage',
      '--no-first-run',
      ...args,
    ],
    timeout: 30_000,
  });
  t.teardown(() => browser.close());
  return browser;
}

export interface Deployment {
  name: 'same-origin' | 'cross-host';
  app: App;
  /** Where the browser opens the app. */
  appUrl: string;
  /** Where the browser reaches the auth service. */
  authUrl: string;
  cookies: CookieNames;
  browser: Browser;
}

async function screenshot(page: Page, deployment: Deployment, step: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${deployment.name}-${step}.png`), fullPage: true });
}

/** Problems the page reports (CSP violations among them): any of them fails the flow. */
function watchProblems(page: Page, problems: string[]): void {
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    // A 401 the client recovers from is logged by Chromium as a failed resource load; anything else counts.
    if (message.type() === 'error' && !/status of 401/.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
}

async function openTab(context: BrowserContext, deployment: Deployment, problems: string[]): Promise<Page> {
  const page = await context.newPage();
  watchProblems(page, problems);
  await page.goto(deployment.appUrl);
  await page.waitForSelector('body[data-ready="true"]');
  return page;
}

const signedIn = (page: Page) => page.waitForSelector('body[data-session="signed-in"]', { timeout: 10_000 });
const signedOut = (page: Page) => page.waitForSelector('body[data-session="signed-out"]', { timeout: 10_000 });
const statusText = (page: Page, pattern: RegExp) =>
  page.waitForFunction(
    (source) =>
      new RegExp(source).test(
        (globalThis as unknown as PageGlobals).document.querySelector('#status')?.textContent ?? '',
      ),
    pattern.source,
    {
      timeout: 10_000,
    },
  );

export async function runFlow(t: FlowTest, deployment: Deployment): Promise<void> {
  const { app, cookies, browser } = deployment;
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  t.teardown(() => context.close());
  const problems: string[] = [];
  // Every refresh request of every tab, and their responses.
  const refreshes: Request[] = [];
  const refreshed: Response[] = [];
  const isRefresh = (request: Request) =>
    request.method() === 'POST' && new URL(request.url()).pathname === '/auth/refresh';
  context.on('request', (request) => {
    if (isRefresh(request)) refreshes.push(request);
  });
  context.on('response', (response) => {
    if (isRefresh(response.request())) refreshed.push(response);
  });
  /** The response to the next refresh after the `seen` first ones, whichever tab sends it. */
  const refreshAfter = async (seen: number): Promise<Response> => {
    const deadline = Date.now() + ACCESS_TOKEN_TTL * 1000 + 5_000;
    while (refreshed.length <= seen) {
      if (Date.now() > deadline) throw new Error(`no refresh within ${ACCESS_TOKEN_TTL + 5} s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return refreshed[seen]!;
  };

  // The page itself, with its own strict CSP.
  const page = await context.newPage();
  watchProblems(page, problems);
  const pageResponse = await page.goto(deployment.appUrl);
  const csp = pageResponse?.headers()['content-security-policy'] ?? '';
  t.match(csp, /script-src 'self'/, 'the page has a CSP allowing only its own scripts');
  t.notMatch(csp, /unsafe-inline|unsafe-eval/, 'no inline script or style is allowed');
  await page.waitForSelector('body[data-ready="true"]');
  await signedOut(page);

  // Register and log in through the forms.
  const email = uniqueEmail('browser');
  await page.fill('#register-form [name=name]', 'Browser Ann');
  await page.fill('#register-form [name=email]', email);
  await page.fill('#register-form [name=password]', STRONG_PASSWORD);
  await page.click('#register-form button[type=submit]');
  await statusText(page, /Registered/);
  await page.fill('#login-form [name=password]', STRONG_PASSWORD);
  await page.click('#login-form button[type=submit]');
  await signedIn(page);
  t.equal(await page.textContent('#profile-email'), email, 'the profile shows the logged-in user');
  await page.click('#reload-profile');
  await statusText(page, /Profile loaded/);
  t.equal(await page.textContent('#profile-name'), 'Browser Ann', 'GET /users/me answered through the cookie');
  await screenshot(page, deployment, '1-logged-in');

  // No token is readable by page script: the access and refresh cookies are HttpOnly.
  const scriptCookies = await page.evaluate(() => (globalThis as unknown as PageGlobals).document.cookie);
  t.notMatch(scriptCookies, /access_token|refresh_token/, 'document.cookie holds no token');
  const jar = await context.cookies([deployment.authUrl, `${deployment.authUrl}/auth`]);
  const byName = new Map(jar.map((cookie) => [cookie.name, cookie]));
  t.equal(byName.get(cookies.access)?.httpOnly, true, `${cookies.access} is set, HttpOnly`);
  t.equal(byName.get(cookies.access)?.sameSite, 'Strict', `${cookies.access} is SameSite=Strict`);
  t.equal(byName.get(cookies.refresh)?.httpOnly, true, `${cookies.refresh} is set, HttpOnly`);
  t.equal(byName.get(cookies.refresh)?.path, '/auth', 'the refresh cookie goes to /auth only');
  if (deployment.name === 'same-origin') {
    t.match(scriptCookies, new RegExp(cookies.csrf), 'same origin: the csrf cookie is readable by the page');
  } else {
    t.notMatch(scriptCookies, /csrf_token/, 'another host: the csrf cookie is out of reach; csrfToken is used');
  }
  const stored = await storedState(page, deployment);
  t.match(stored?.csrfToken, /^[\w-]+\.[\w-]+$/, 'the csrf value from the token response is kept per tab');
  t.notMatch(JSON.stringify(stored), /accessToken|refreshToken/, 'the kept state holds no token');
  const lifetime = (stored?.expiresAt ?? 0) - (stored?.issuedAt ?? 0);
  t.ok(Math.abs(lifetime - ACCESS_TOKEN_TTL * 1000) < 1_000, 'the state knows when the access token expires');

  // Sessions: another device logs in; this page lists both and revokes the other one.
  const other = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email, password: STRONG_PASSWORD },
    headers: { 'user-agent': 'other-device' },
  });
  t.equal(other.statusCode, 200, 'a second session opened elsewhere');
  await page.click('#reload-sessions');
  await page.waitForFunction(
    () => (globalThis as unknown as PageGlobals).document.querySelectorAll('#sessions tr').length === 2,
  );
  t.equal(await page.locator('#sessions tr.current').count(), 1, 'one of them is this session');
  await screenshot(page, deployment, '2-sessions');
  await page.click('#sessions tr:not(.current) button.revoke');
  await statusText(page, /Session revoked/);
  await page.waitForFunction(
    () => (globalThis as unknown as PageGlobals).document.querySelectorAll('#sessions tr').length === 1,
  );
  const revoked = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    payload: { refreshToken: other.json().refreshToken },
  });
  t.equal(revoked.statusCode, 401, "the revoked session's refresh token is dead");

  // Silent refresh shortly before the access token expires.
  t.equal(refreshes.length, 0, 'no refresh yet');
  const silent = await refreshAfter(0);
  t.equal(silent.status(), 200, 'a silent refresh happened before expiry');
  t.equal(new URL(silent.url()).origin, deployment.authUrl, 'the refresh went to the auth service');
  t.match(silent.headers()['cache-control'] ?? '', /no-store/, 'the token response is not cached');
  await page.click('#reload-profile');
  await statusText(page, /Profile loaded/);

  // One 401 is recovered by one refresh and a retry: the access cookie is gone (as after a sleeping laptop).
  await context.clearCookies({ name: cookies.access });
  await page.evaluate(() => {
    const el = (globalThis as unknown as PageGlobals).document.querySelector('#status');
    if (el) el.textContent = '';
  });
  const before = refreshes.length;
  await page.click('#reload-profile');
  await statusText(page, /Profile loaded/);
  t.equal(refreshes.length - before, 1, 'a 401 cost exactly one refresh, then the retry succeeded');

  // Five tabs of one session: one refresh per expiry, not five.
  const tabs = [page];
  for (let i = 1; i < 5; i++) tabs.push(await openTab(context, deployment, problems));
  for (const tab of tabs) await signedIn(tab);
  t.equal(refreshes.length - before, 1, 'opening four more tabs refreshed nothing (they got the session from a tab)');
  for (let expiry = 1; expiry <= 2; expiry++) {
    const counted = refreshes.length;
    const response = await refreshAfter(refreshed.length);
    // Long enough for every tab's timer and lock to have run.
    await page.waitForTimeout(1_500);
    t.equal(refreshes.length - counted, 1, `expiry ${expiry}: five tabs, exactly one refresh`);
    t.equal(response.status(), 200, `expiry ${expiry}: the refresh succeeded`);
    const { csrfToken } = (await response.json()) as { csrfToken: string };
    for (const [i, tab] of tabs.entries()) {
      const state = await storedState(tab, deployment);
      t.equal(state?.csrfToken, csrfToken, `expiry ${expiry}: tab ${i + 1} holds the new csrf value`);
    }
  }
  await screenshot(tabs[4]!, deployment, '3-fifth-tab');

  // Password change from the last tab (its csrf value came from another tab's refresh).
  const last = tabs[4]!;
  await last.fill('#password-form [name=currentPassword]', STRONG_PASSWORD);
  await last.fill('#password-form [name=newPassword]', 'another horse battery staple');
  await last.click('#password-form button[type=submit]');
  await statusText(last, /Password changed/);
  const relogin = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email, password: 'another horse battery staple' },
  });
  t.equal(relogin.statusCode, 200, 'the new password works');
  await page.click('#reload-profile');
  await statusText(page, /Profile loaded/);

  // Logout in the second tab ends the session in all of them.
  await tabs[1]!.click('#logout');
  for (const tab of tabs) {
    await signedOut(tab);
    await statusText(tab, /signed out/);
  }
  await screenshot(page, deployment, '4-logged-out');
  const after = await context.cookies([deployment.authUrl, `${deployment.authUrl}/auth`]);
  t.same(
    after.filter((cookie) => Object.values(cookies).includes(cookie.name)).map((cookie) => cookie.name),
    [],
    'logout cleared the cookies',
  );
  const me = await page.evaluate(
    async (url) => (await fetch(`${url}/users/me`, { credentials: 'include' })).status,
    deployment.authUrl,
  );
  t.equal(me, 401, 'the page is no longer authenticated');
  const loggedOut = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    payload: { refreshToken: relogin.json().refreshToken },
  });
  t.equal(loggedOut.statusCode, 200, 'logout ended only the browser session');

  t.same(problems, [], 'no page errors, no CSP violations');
}
