// Password reset through a real SMTP server, on real Postgres and Redis: the mailed link replaces the password once,
// ends every session and access token of the user at once, verifies the address; weak passwords, reuse, voiding by a
// newer link or a password change, expiry on a movable clock, unknown addresses, and one token presented in parallel.
import t, { type Test } from 'tap';
import { myEvents } from '../../helpers/admin.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  type Account,
  assertError,
  bearer,
  codeOf,
  login,
  loginRequest,
  loginWithCookies,
  me,
  refresh,
  register,
  STRONG_PASSWORD,
  uniqueEmail,
} from '../../helpers/session-flow.js';
import { type ReceivedMail, startSmtpSink } from '../../helpers/smtp.js';

const APP_URL = 'https://app.example.com';
const RESET_TTL_S = 1800;
const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000);
const smtp = await startSmtpSink(t);
const { app } = await buildTestApp(t, {
  clock,
  env: { SMTP_URL: smtp.url, APP_URL, PASSWORD_RESET_TTL: String(RESET_TTL_S) },
});

const RESET_LINK = /^https:\/\/app\.example\.com\/reset-password\?token=[A-Za-z0-9_-]{43,}$/;

const requestReset = (email: string) =>
  app.inject({ method: 'POST', url: '/auth/password-reset/request', payload: { email } });
const reset = (token: string, newPassword: string) =>
  app.inject({ method: 'POST', url: '/auth/password-reset', payload: { token, newPassword } });

/** The reset mails an address received, oldest first. */
const resetMails = (email: string) => smtp.to(email).filter((mail) => mail.text.includes('/reset-password?token='));

/** Requests a reset for `email` and returns the one new mail it produced (asserting it is the only new one). */
async function mailedReset(t: Test, email: string): Promise<ReceivedMail & { token: string }> {
  const before = smtp.to(email).length;
  const response = await requestReset(email);
  t.equal(response.statusCode, 202, 'reset request: 202');
  t.strictSame(response.json(), {}, 'reset request: {}');
  await app.accounts.settled();
  const mails = await smtp.waitFor(email, before + 1);
  t.equal(mails.length, before + 1, 'exactly one new mail');
  const mail = mails[mails.length - 1] as ReceivedMail;
  if (!mail.token) throw new Error(`no token in ${mail.text}`);
  return mail as ReceivedMail & { token: string };
}

/** A registered account whose registration mail has arrived (so later counts are of reset mail only). */
async function settledAccount(): Promise<Account> {
  const account = await register(app);
  await app.accounts.settled();
  await smtp.waitFor(account.email, 1);
  return account;
}

t.test('the full reset: one link, 204, new password, every session and access token dead, verified', async (t) => {
  const account = await settledAccount();
  const bearerSession = await login(app, account);
  const rotated = (await refresh(app, bearerSession.refreshToken)).json();
  const other = await login(app, account);
  const cookieSession = await loginWithCookies(app, account);
  const bystander = await login(app, await settledAccount());
  t.equal((await me(app, other.accessToken)).json().user.emailVerified, false, 'unverified before');

  const mail = await mailedReset(t, account.email);
  t.equal(mail.links.length, 1, 'the text part holds exactly one link');
  t.match(mail.links[0], RESET_LINK, '<APP_URL>/reset-password?token=…');
  t.equal(resetMails(account.email).length, 1, 'one reset mail');
  t.ok(mail.html.includes(mail.links[0] as string), 'the HTML part carries the same link');

  const newPassword = 'a fresh reset passphrase 1';
  const response = await reset(mail.token, newPassword);
  t.equal(response.statusCode, 204, response.body);
  t.equal(response.body, '');

  // Immediately: no clock move, no wait.
  for (const [label, token] of [
    ['bearer session, original', bearerSession.accessToken],
    ['bearer session, rotated', rotated.accessToken],
    ['other bearer session', other.accessToken],
  ] as const) {
    assertError(t, await me(app, token), 401, 'TOKEN_REVOKED', label);
  }
  const byCookie = await app.inject({ method: 'GET', url: '/users/me', cookies: cookieSession.cookies });
  assertError(t, byCookie, 401, 'TOKEN_REVOKED', 'cookie session access token');
  for (const [label, token] of [
    ['rotated refresh token', rotated.refreshToken],
    ['other refresh token', other.refreshToken],
    ['cookie refresh token in the body', cookieSession.refresh],
  ] as const) {
    assertError(t, await refresh(app, token), 401, 'REFRESH_TOKEN_INVALID', label);
  }
  const cookieRefresh = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    cookies: cookieSession.cookies,
    headers: { 'x-csrf-token': cookieSession.csrf },
    payload: {},
  });
  assertError(t, cookieRefresh, 401, 'REFRESH_TOKEN_INVALID', 'cookie refresh by cookie');

  assertError(t, await loginRequest(app, account.email, STRONG_PASSWORD), 401, 'INVALID_CREDENTIALS', 'old password');
  const fresh = await login(app, { ...account, password: newPassword });
  const profile = await me(app, fresh.accessToken);
  t.equal(profile.statusCode, 200);
  t.equal(profile.json().user.emailVerified, true, 'the email counts as verified');

  const events = await myEvents(app, fresh.accessToken, { limit: '100' });
  t.equal(events.statusCode, 200);
  const types = events.json().items.map((item: { type: string }) => item.type);
  t.ok(types.includes('password_reset'), 'password_reset event');
  t.ok(types.includes('password_reset_requested'), 'password_reset_requested event');
  const resetEvent = events.json().items.find((item: { type: string }) => item.type === 'password_reset');
  t.equal(resetEvent?.ip, '127.0.0.1', 'with the client address');

  assertError(t, await reset(mail.token, 'yet another passphrase 2'), 400, 'ACTION_TOKEN_INVALID', 'second use');
  t.equal((await loginRequest(app, account.email, newPassword)).statusCode, 200, 'second use changed nothing');

  t.equal((await me(app, bystander.accessToken)).statusCode, 200, 'another user keeps its session');
  t.equal((await refresh(app, bystander.refreshToken)).statusCode, 200);
});

t.test('the new password is checked like a registration password; the token survives a refusal', async (t) => {
  const account = await settledAccount();
  const mail = await mailedReset(t, account.email);
  for (const weak of ['short', 'password', 'PASSWORD123', 'x'.repeat(129)]) {
    assertError(t, await reset(mail.token, weak), 400, 'PASSWORD_TOO_WEAK', weak.slice(0, 12));
  }
  t.equal((await loginRequest(app, account.email, STRONG_PASSWORD)).statusCode, 200, 'the password is unchanged');
  const response = await reset(mail.token, 'strong enough reset passphrase');
  t.equal(response.statusCode, 204, 'the token still works');
  t.equal((await loginRequest(app, account.email, 'strong enough reset passphrase')).statusCode, 200);
});

t.test('bad bodies: 400 VALIDATION_FAILED, token intact', async (t) => {
  const account = await settledAccount();
  const mail = await mailedReset(t, account.email);
  for (const payload of [{}, { token: mail.token }, { newPassword: 'some long passphrase' }]) {
    const response = await app.inject({ method: 'POST', url: '/auth/password-reset', payload });
    assertError(t, response, 400, 'VALIDATION_FAILED', Object.keys(payload).join(',') || 'empty');
  }
  t.equal((await reset(mail.token, 'some long passphrase')).statusCode, 204);
});

t.test('a newer reset request voids the older link', async (t) => {
  const account = await settledAccount();
  const older = await mailedReset(t, account.email);
  const newer = await mailedReset(t, account.email);
  t.not(older.token, newer.token, 'two different tokens');
  t.equal(resetMails(account.email).length, 2);
  assertError(t, await reset(older.token, 'the older link passphrase'), 400, 'ACTION_TOKEN_INVALID', 'older link');
  t.equal((await loginRequest(app, account.email, STRONG_PASSWORD)).statusCode, 200, 'password unchanged');
  t.equal((await reset(newer.token, 'the newer link passphrase')).statusCode, 204, 'the newer link works');
});

t.test('a password change voids every reset link', async (t) => {
  const account = await settledAccount();
  const mail = await mailedReset(t, account.email);
  const session = await login(app, account);
  const changed = await app.inject({
    method: 'POST',
    url: '/auth/password',
    headers: bearer(session.accessToken),
    payload: { currentPassword: STRONG_PASSWORD, newPassword: 'changed by the owner 42' },
  });
  t.equal(changed.statusCode, 204);
  assertError(t, await reset(mail.token, 'an attacker passphrase'), 400, 'ACTION_TOKEN_INVALID', 'after a change');
  t.equal((await loginRequest(app, account.email, 'changed by the owner 42')).statusCode, 200, 'the change holds');
  t.equal((await me(app, session.accessToken)).statusCode, 200, 'the changing session lives on');
});

t.test('unknown email: 202 {} and no mail at all', async (t) => {
  const email = uniqueEmail('nobody');
  const before = smtp.received.length;
  const response = await requestReset(email);
  t.equal(response.statusCode, 202);
  t.strictSame(response.json(), {});
  await app.accounts.settled();
  // Give a stray delivery a moment to land before counting.
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(smtp.to(email).length, 0, 'nothing to that address');
  t.equal(smtp.received.length, before, 'nothing to anyone');
});

t.test('one token presented in parallel: exactly one 204, the rest 400, never 500', async (t) => {
  const account = await settledAccount();
  const ROUNDS = 10;
  const PARALLEL = 5;
  let password = STRONG_PASSWORD;
  for (let round = 0; round < ROUNDS; round++) {
    const mail = await mailedReset(t, account.email);
    const candidates = Array.from({ length: PARALLEL }, (_, i) => `round ${round} attempt ${i} passphrase`);
    const responses = await Promise.all(candidates.map((candidate) => reset(mail.token, candidate)));
    const statuses = responses.map((response) => response.statusCode);
    const winners = statuses.flatMap((status, i) => (status === 204 ? [i] : []));
    t.equal(winners.length, 1, `round ${round}: exactly one 204 (${statuses.join(',')})`);
    t.ok(
      responses.every((response) => response.statusCode === 204 || codeOf(response) === 'ACTION_TOKEN_INVALID'),
      `round ${round}: the others are 400 ACTION_TOKEN_INVALID`,
    );
    const winner = winners[0];
    if (winner !== undefined) password = candidates[winner] as string;
  }
  t.equal((await loginRequest(app, account.email, password)).statusCode, 200, "the last winner's password holds");
  assertError(t, await loginRequest(app, account.email, STRONG_PASSWORD), 401, 'INVALID_CREDENTIALS', 'original');
});

// Last: it moves the clock past the access tokens' lifetime.
t.test('a reset link expires after PASSWORD_RESET_TTL', async (t) => {
  const account = await settledAccount();
  const mail = await mailedReset(t, account.email);
  clock.advance(RESET_TTL_S * 1000 - 1000);
  // A weak password is refused only once the token passed: the link is still live a second before its end.
  assertError(t, await reset(mail.token, 'short'), 400, 'PASSWORD_TOO_WEAK', 'a second before expiry');
  clock.advance(1000);
  assertError(t, await reset(mail.token, 'a passphrase too late'), 400, 'ACTION_TOKEN_INVALID', 'at expiry');
  clock.advance(60_000);
  assertError(t, await reset(mail.token, 'a passphrase too late'), 400, 'ACTION_TOKEN_INVALID', 'after expiry');
  t.equal((await loginRequest(app, account.email, STRONG_PASSWORD)).statusCode, 200, 'the password is unchanged');
});
