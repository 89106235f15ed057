// Email change through a real SMTP server, on real Postgres and Redis: the current password is proven, a link goes to
// the new address and a linkless notice to the old one, nothing changes until the link is opened; confirmation moves
// the account (verified, an event, the logins follow); taken addresses, a registration in between, reuse and CSRF.
import { and, eq } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { actionTokens } from '../../../src/db/schema.js';
import { myEvents } from '../../helpers/admin.js';
import { buildTestApp } from '../../helpers/app.js';
import {
  type Account,
  assertError,
  bearer,
  type Headers,
  login,
  loginRequest,
  loginWithCookies,
  me,
  register,
  STRONG_PASSWORD,
  uniqueEmail,
} from '../../helpers/session-flow.js';
import { type ReceivedMail, startSmtpSink } from '../../helpers/smtp.js';

const APP_URL = 'https://app.example.com';
const smtp = await startSmtpSink(t);
const { app } = await buildTestApp(t, { env: { SMTP_URL: smtp.url, APP_URL } });

const CONFIRM_LINK = /^https:\/\/app\.example\.com\/confirm-email\?token=[A-Za-z0-9_-]{43,}$/;
const ANY_URL = /https?:\/\/|www\.|href=/i;

const requestChange = (headers: Headers, payload: object, cookies?: Record<string, string>) =>
  app.inject({ method: 'POST', url: '/auth/email', headers, cookies, payload });
const confirm = (token: string) => app.inject({ method: 'POST', url: '/auth/email/confirm', payload: { token } });

/** A registered, logged-in account whose registration mail has arrived. */
async function settledSession() {
  const account = await register(app);
  await app.accounts.settled();
  await smtp.waitFor(account.email, 1);
  return login(app, account);
}

/** Asserts a mail carries no link of any kind, in its text or its HTML. */
function assertNoLink(t: Test, mail: ReceivedMail | undefined, label: string) {
  t.ok(mail, `${label}: a notice arrived`);
  if (!mail) return;
  t.equal(mail.links.length, 0, `${label}: no URL in the text part`);
  t.notMatch(mail.text, ANY_URL, `${label}: nothing link-like in the text`);
  t.notMatch(mail.html, ANY_URL, `${label}: no URL or href in the HTML`);
  t.notMatch(mail.text, /token/i, `${label}: no token`);
}

/** Asks to move `account` to `newEmail` and waits for the deferred mail; returns the mails each address got. */
async function changeAndSettle(t: Test, accessToken: string, account: Account, newEmail: string) {
  const oldBefore = smtp.to(account.email).length;
  const newBefore = smtp.to(newEmail).length;
  const response = await requestChange(bearer(accessToken), { newEmail, currentPassword: account.password });
  t.equal(response.statusCode, 202, `change to ${newEmail}: 202`);
  t.strictSame(response.json(), {}, 'body {}');
  await app.accounts.settled();
  const oldMails = (await smtp.waitFor(account.email, oldBefore + 1)).slice(oldBefore);
  // Let a stray mail to the new address land before it is counted.
  await new Promise((resolve) => setTimeout(resolve, 50));
  return { oldMails, newMails: smtp.to(newEmail).slice(newBefore) };
}

t.test('wrong current password: 401 INVALID_CREDENTIALS, no mail, no token', async (t) => {
  const session = await settledSession();
  const newEmail = uniqueEmail('wanted');
  const response = await requestChange(bearer(session.accessToken), {
    newEmail,
    currentPassword: `${STRONG_PASSWORD}!`,
  });
  assertError(t, response, 401, 'INVALID_CREDENTIALS');
  t.notMatch(response.headers['www-authenticate'], /invalid_token/, 'the session is fine');
  await app.accounts.settled();
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(smtp.to(newEmail).length, 0, 'nothing to the new address');
  t.equal(smtp.to(session.account.email).length, 1, 'nothing more to the old one');
  const rows = await app.db.select().from(actionTokens).where(eq(actionTokens.userId, session.account.id));
  t.notOk(
    rows.some((row) => row.purpose === 'email_change'),
    'no email_change token',
  );
});

t.test('the full change: a link to the new address, a linkless notice to the old, then the move', async (t) => {
  const session = await settledSession();
  const { account } = session;
  const newEmail = uniqueEmail('moved');
  const { oldMails, newMails } = await changeAndSettle(t, session.accessToken, account, newEmail);

  t.equal(newMails.length, 1, 'one mail to the new address');
  const [linkMail] = newMails;
  t.equal(linkMail?.links.length, 1, 'holding exactly one link');
  t.match(linkMail?.links[0], CONFIRM_LINK, '<APP_URL>/confirm-email?token=…');
  t.equal(oldMails.length, 1, 'one notice to the old address');
  assertNoLink(t, oldMails[0], 'old address');
  t.notOk(oldMails[0]?.text.includes(newEmail), 'the notice does not spell out the new address');

  // Nothing changes yet.
  const before = await me(app, session.accessToken);
  t.equal(before.json().user.email, account.email, 'GET /users/me still shows the old email');
  t.equal(before.json().user.emailVerified, false);
  assertError(t, await loginRequest(app, newEmail, account.password), 401, 'INVALID_CREDENTIALS', 'new email, early');
  t.equal((await loginRequest(app, account.email, account.password)).statusCode, 200, 'old email still logs in');

  const confirmed = await confirm(linkMail?.token as string);
  t.equal(confirmed.statusCode, 200, confirmed.body);
  t.match(confirmed.json(), { user: { id: account.id, email: newEmail, emailVerified: true } });
  const after = await me(app, session.accessToken);
  t.equal(after.statusCode, 200, 'the session lives on');
  t.equal(after.json().user.email, newEmail, 'GET /users/me shows the new email');
  t.equal(after.json().user.emailVerified, true, 'verified');

  assertError(t, await loginRequest(app, account.email, account.password), 401, 'INVALID_CREDENTIALS', 'old email');
  const moved = await login(app, { ...account, email: newEmail });
  const events = await myEvents(app, moved.accessToken, { limit: '100' });
  const items: { type: string; details?: unknown }[] = events.json().items;
  t.ok(
    items.some((item) => item.type === 'email_changed'),
    'email_changed event',
  );
  t.ok(
    items.some((item) => item.type === 'email_change_requested'),
    'email_change_requested event',
  );

  assertError(t, await confirm(linkMail?.token as string), 400, 'ACTION_TOKEN_INVALID', 'second use');
  t.equal((await me(app, moved.accessToken)).json().user.email, newEmail, 'still the new email');
});

t.test('to an address already registered: 202, that address gets nothing, the notice has no link', async (t) => {
  const session = await settledSession();
  const owner = await register(app);
  await app.accounts.settled();
  await smtp.waitFor(owner.email, 1);
  const { oldMails, newMails } = await changeAndSettle(t, session.accessToken, session.account, owner.email);
  t.equal(newMails.length, 0, 'the registered address receives nothing');
  t.equal(oldMails.length, 1, 'the old address gets its notice');
  assertNoLink(t, oldMails[0], 'old address');
  const rows = await app.db
    .select()
    .from(actionTokens)
    .where(and(eq(actionTokens.userId, session.account.id), eq(actionTokens.purpose, 'email_change')));
  t.equal(rows.length, 0, 'no email_change token was minted');
  t.equal((await me(app, session.accessToken)).json().user.email, session.account.email, 'unchanged');
});

t.test('to its own address (case aside): 202, and the one mailbox gets the notice only', async (t) => {
  const session = await settledSession();
  const { account } = session;
  const response = await requestChange(bearer(session.accessToken), {
    newEmail: account.email.toUpperCase(),
    currentPassword: account.password,
  });
  t.equal(response.statusCode, 202);
  await app.accounts.settled();
  await smtp.waitFor(account.email, 2);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const mails = smtp.to(account.email).slice(1);
  t.equal(mails.length, 1, 'one new mail: the notice, no link mail');
  assertNoLink(t, mails[0], 'notice');
});

t.test('a registration of the address before the confirmation: 409 EMAIL_TAKEN, email unchanged', async (t) => {
  const session = await settledSession();
  const newEmail = uniqueEmail('contested');
  const { newMails } = await changeAndSettle(t, session.accessToken, session.account, newEmail);
  const token = newMails[0]?.token as string;
  t.ok(token, 'a link went out');
  const squatter = await register(app, { email: newEmail });

  assertError(t, await confirm(token), 409, 'EMAIL_TAKEN', 'confirm after the registration');
  const profile = await me(app, session.accessToken);
  t.equal(profile.json().user.email, session.account.email, "the user's email is unchanged");
  t.equal((await loginRequest(app, session.account.email, STRONG_PASSWORD)).statusCode, 200, 'old email logs in');
  const holder = await login(app, squatter);
  t.equal((await me(app, holder.accessToken)).json().user.id, squatter.id, 'the address is the registrant’s');
});

t.test('confirmation voids the links mailed to the old address, even after moving back', async (t) => {
  const session = await settledSession();
  const { account } = session;
  const resetRequest = await app.inject({
    method: 'POST',
    url: '/auth/password-reset/request',
    payload: { email: account.email },
  });
  t.equal(resetRequest.statusCode, 202);
  await app.accounts.settled();
  const [verifyMail, resetMail] = await smtp.waitFor(account.email, 2);
  const newEmail = uniqueEmail('moved');
  const { newMails } = await changeAndSettle(t, session.accessToken, account, newEmail);
  t.equal((await confirm(newMails[0]?.token as string)).statusCode, 200);

  const resetResponse = await app.inject({
    method: 'POST',
    url: '/auth/password-reset',
    payload: { token: resetMail?.token, newPassword: 'a hijacker passphrase' },
  });
  assertError(t, resetResponse, 400, 'ACTION_TOKEN_INVALID', 'reset link sent to the old address');
  const verifyResponse = await app.inject({
    method: 'POST',
    url: '/auth/verify-email',
    payload: { token: verifyMail?.token },
  });
  assertError(t, verifyResponse, 400, 'ACTION_TOKEN_INVALID', 'verification link of the old address');

  // Back to the old address: the links it was sent before the move stay void.
  const back = await changeAndSettle(t, session.accessToken, { ...account, email: newEmail }, account.email);
  t.equal((await confirm(back.newMails[0]?.token as string)).statusCode, 200, 'moved back');
  const resetAgain = await app.inject({
    method: 'POST',
    url: '/auth/password-reset',
    payload: { token: resetMail?.token, newPassword: 'a hijacker passphrase' },
  });
  assertError(t, resetAgain, 400, 'ACTION_TOKEN_INVALID', 'old reset link, once the address is back');
  t.equal((await loginRequest(app, account.email, STRONG_PASSWORD)).statusCode, 200, 'the password is unchanged');
});

t.test('authentication and CSRF', async (t) => {
  const payload = { newEmail: uniqueEmail('wanted'), currentPassword: STRONG_PASSWORD };
  assertError(t, await requestChange({}, payload), 401, 'TOKEN_MISSING', 'no credential');

  const account = await register(app);
  await app.accounts.settled();
  const session = await loginWithCookies(app, account);
  assertError(t, await requestChange({}, payload, session.cookies), 403, 'CSRF_FAILED', 'cookie without X-CSRF-Token');
  assertError(
    t,
    await requestChange({ 'x-csrf-token': 'made-up' }, payload, session.cookies),
    403,
    'CSRF_FAILED',
    'cookie with a made-up X-CSRF-Token',
  );
  await app.accounts.settled();
  t.equal(smtp.to(payload.newEmail).length, 0, 'refused requests send nothing');

  const accepted = await requestChange({ 'x-csrf-token': session.csrf }, payload, session.cookies);
  t.equal(accepted.statusCode, 202, 'with the header: 202');
  await app.accounts.settled();
  const [mail] = await smtp.waitFor(payload.newEmail, 1);
  t.match(mail?.links[0], CONFIRM_LINK);
});

t.test('bad bodies: 400 VALIDATION_FAILED', async (t) => {
  const session = await settledSession();
  for (const payload of [
    {},
    { newEmail: 'not-an-email', currentPassword: STRONG_PASSWORD },
    { newEmail: uniqueEmail() },
    { currentPassword: STRONG_PASSWORD },
  ]) {
    const response = await requestChange(bearer(session.accessToken), payload);
    assertError(t, response, 400, 'VALIDATION_FAILED', JSON.stringify(payload));
  }
});
