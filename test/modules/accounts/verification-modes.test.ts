// EMAIL_VERIFICATION on real Postgres and a real SMTP server: `required` refuses the login of an unverified user only
// once the password is proven; `off` sends no verification mail (password reset still mails); `optional`, the
// default, lets unverified users in.
import t from 'tap';
import { buildTestApp } from '../../helpers/app.js';
import { assertError, loginRequest, me, register, STRONG_PASSWORD, uniqueEmail } from '../../helpers/session-flow.js';
import { startSmtpSink } from '../../helpers/smtp.js';

const smtp = await startSmtpSink(t);
const settle = async (app: { accounts: { settled(): Promise<void> } }) => {
  await app.accounts.settled();
  // Let a stray delivery land before anything is counted.
  await new Promise((resolve) => setTimeout(resolve, 50));
};

t.test('required: an unverified user is refused with 403 only after the right password', async (t) => {
  const { app } = await buildTestApp(t, { env: { SMTP_URL: smtp.url, EMAIL_VERIFICATION: 'required' } });
  const account = await register(app);
  await app.accounts.settled();
  const [mail] = await smtp.waitFor(account.email, 1);

  assertError(t, await loginRequest(app, account.email, STRONG_PASSWORD), 403, 'EMAIL_NOT_VERIFIED', 'right password');
  assertError(
    t,
    await loginRequest(app, account.email, `${STRONG_PASSWORD}!`),
    401,
    'INVALID_CREDENTIALS',
    'wrong password',
  );
  assertError(
    t,
    await loginRequest(app, uniqueEmail('nobody'), STRONG_PASSWORD),
    401,
    'INVALID_CREDENTIALS',
    'unknown email',
  );
  const cookieLogin = await loginRequest(app, account.email, STRONG_PASSWORD, { transport: 'cookie' });
  assertError(t, cookieLogin, 403, 'EMAIL_NOT_VERIFIED', 'cookie transport');
  t.equal(cookieLogin.cookies.length, 0, 'no session cookie is set');

  const verified = await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token: mail?.token } });
  t.equal(verified.statusCode, 200, verified.body);
  const login = await loginRequest(app, account.email, STRONG_PASSWORD);
  t.equal(login.statusCode, 200, 'verified: 200');
  t.equal(login.json().user.emailVerified, true);

  // A password reset proves the mailbox too: it lets an unverified user in.
  const other = await register(app);
  await app.accounts.settled();
  await smtp.waitFor(other.email, 1);
  assertError(t, await loginRequest(app, other.email, STRONG_PASSWORD), 403, 'EMAIL_NOT_VERIFIED', 'before reset');
  await app.inject({ method: 'POST', url: '/auth/password-reset/request', payload: { email: other.email } });
  await app.accounts.settled();
  const [, resetMail] = await smtp.waitFor(other.email, 2);
  const newPassword = 'reset in required mode 9';
  const reset = await app.inject({
    method: 'POST',
    url: '/auth/password-reset',
    payload: { token: resetMail?.token, newPassword },
  });
  t.equal(reset.statusCode, 204);
  t.equal((await loginRequest(app, other.email, newPassword)).statusCode, 200, 'after a reset: 200');
});

t.test('off: no verification mail at all, but password reset still mails', async (t) => {
  const { app } = await buildTestApp(t, { env: { SMTP_URL: smtp.url, EMAIL_VERIFICATION: 'off' } });
  const account = await register(app);
  await settle(app);
  t.equal(smtp.to(account.email).length, 0, 'registration sends nothing');

  const request = await app.inject({
    method: 'POST',
    url: '/auth/verify-email/request',
    payload: { email: account.email },
  });
  t.equal(request.statusCode, 202, 'verify-email/request: 202');
  t.strictSame(request.json(), {});
  await settle(app);
  t.equal(smtp.to(account.email).length, 0, 'verify-email/request sends nothing');

  const login = await loginRequest(app, account.email, STRONG_PASSWORD);
  t.equal(login.statusCode, 200, 'an unverified user logs in');
  t.equal(login.json().user.emailVerified, false);

  const reset = await app.inject({
    method: 'POST',
    url: '/auth/password-reset/request',
    payload: { email: account.email },
  });
  t.equal(reset.statusCode, 202);
  await app.accounts.settled();
  const [mail] = await smtp.waitFor(account.email, 1);
  t.match(mail?.links[0], /\/reset-password\?token=[A-Za-z0-9_-]{43,}$/, 'the reset mail went out');
});

t.test('optional (the default): a verification mail, and unverified users log in', async (t) => {
  const { app, config } = await buildTestApp(t, { env: { SMTP_URL: smtp.url } });
  t.equal(config.mail.verification, 'optional', 'the default');
  const account = await register(app);
  await app.accounts.settled();
  const [mail] = await smtp.waitFor(account.email, 1);
  t.match(mail?.links[0], /\/verify-email\?token=/, 'registration mails a verification link');
  const login = await loginRequest(app, account.email, STRONG_PASSWORD);
  t.equal(login.statusCode, 200, 'unverified: 200');
  t.equal(login.json().user.emailVerified, false);
  t.equal((await me(app, login.json().accessToken)).json().user.emailVerified, false);
});
