// Email verification through a real SMTP server: registration mails a link, the link verifies once, for its purpose.
import { eq } from 'drizzle-orm';
import t from 'tap';
import { securityEvents } from '../../../src/db/schema.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import { assertError, register, STRONG_PASSWORD, uniqueEmail } from '../../helpers/session-flow.js';
import { startSmtpSink } from '../../helpers/smtp.js';

const VERIFY_TTL_S = 86_400;
const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000);
const smtp = await startSmtpSink(t);
const { app } = await buildTestApp(t, {
  clock,
  env: { SMTP_URL: smtp.url, APP_URL: 'https://app.example.com', VERIFY_EMAIL_TTL: String(VERIFY_TTL_S) },
});

const verify = (token: string) => app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token } });

t.test('registration mails a verification link that verifies the address once', async (t) => {
  const account = await register(app);
  await app.accounts.settled();
  const [mail] = await smtp.waitFor(account.email);
  t.ok(mail);
  if (!mail) return;
  t.equal(mail.links.length, 1, 'the text part holds exactly one link');
  t.match(mail.links[0], /^https:\/\/app\.example\.com\/verify-email\?token=[A-Za-z0-9_-]{43,}$/);
  t.ok(mail.html.includes('/verify-email?token='), 'the HTML part links too');

  const first = await verify(mail.token as string);
  t.equal(first.statusCode, 200, first.body);
  t.equal(first.json().user.emailVerified, true);
  t.equal(first.json().user.email, account.email);

  const again = await verify(mail.token as string);
  t.equal(again.statusCode, 400);
  t.equal(again.json().code, 'ACTION_TOKEN_INVALID');

  const events = await app.db.select().from(securityEvents).where(eq(securityEvents.userId, account.id));
  t.ok(events.some((event) => event.type === 'email_verified'));
  t.ok(events.some((event) => event.type === 'verification_sent'));
});

t.test('an unknown token is ACTION_TOKEN_INVALID', async (t) => {
  const response = await verify('not-a-token');
  t.equal(response.statusCode, 400);
  t.equal(response.json().code, 'ACTION_TOKEN_INVALID');
});

t.test('the request route answers 202 {} for unknown addresses and sends nothing', async (t) => {
  const email = uniqueEmail('nobody');
  const response = await app.inject({ method: 'POST', url: '/auth/verify-email/request', payload: { email } });
  t.equal(response.statusCode, 202);
  t.same(response.json(), {});
  await app.accounts.settled();
  t.equal(smtp.to(email).length, 0);
  t.ok(STRONG_PASSWORD);
});

const requestVerification = (email: string) =>
  app.inject({ method: 'POST', url: '/auth/verify-email/request', payload: { email } });

/** Settles deferred work and gives a stray delivery a moment to land before anything is counted. */
async function settle() {
  await app.accounts.settled();
  await new Promise((resolve) => setTimeout(resolve, 50));
}

t.test('a request for a known unverified address sends one more link; for a verified one, nothing', async (t) => {
  const account = await register(app);
  await app.accounts.settled();
  await smtp.waitFor(account.email, 1);

  const response = await requestVerification(account.email.toUpperCase());
  t.equal(response.statusCode, 202);
  t.same(response.json(), {});
  await settle();
  const mails = smtp.to(account.email);
  t.equal(mails.length, 2, 'exactly one more mail');
  const mail = mails[1];
  t.equal(mail?.links.length, 1, 'with exactly one link');
  t.match(mail?.links[0], /^https:\/\/app\.example\.com\/verify-email\?token=[A-Za-z0-9_-]{43,}$/);

  const verified = await verify(mail?.token as string);
  t.equal(verified.statusCode, 200, 'the requested link verifies');
  t.equal(verified.json().user.emailVerified, true);

  const again = await requestVerification(account.email);
  t.equal(again.statusCode, 202, 'verified address: still 202');
  t.same(again.json(), {});
  await settle();
  t.equal(smtp.to(account.email).length, 2, 'but no mail');
});

// Last: it moves the clock a day on.
t.test('a verification link expires after VERIFY_EMAIL_TTL', async (t) => {
  const early = await register(app);
  const late = await register(app);
  await app.accounts.settled();
  const [earlyMail] = await smtp.waitFor(early.email, 1);
  const [lateMail] = await smtp.waitFor(late.email, 1);

  clock.advance(VERIFY_TTL_S * 1000 - 1000);
  t.equal((await verify(earlyMail?.token as string)).statusCode, 200, 'a second before its end, the link verifies');
  // A fresh link for the other user, minted now: it outlives the first one.
  t.equal((await requestVerification(late.email)).statusCode, 202);
  await app.accounts.settled();
  const [, freshMail] = await smtp.waitFor(late.email, 2);

  clock.advance(1000);
  assertError(t, await verify(lateMail?.token as string), 400, 'ACTION_TOKEN_INVALID', 'at its end');
  clock.advance(60_000);
  assertError(t, await verify(lateMail?.token as string), 400, 'ACTION_TOKEN_INVALID', 'after its end');
  const fresh = await verify(freshMail?.token as string);
  t.equal(fresh.statusCode, 200, 'the fresh link still verifies');
  t.equal(fresh.json().user.email, late.email);
});
