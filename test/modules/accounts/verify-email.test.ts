// Email verification through a real SMTP server: registration mails a link, the link verifies once, for its purpose.
import { eq } from 'drizzle-orm';
import t from 'tap';
import { securityEvents } from '../../../src/db/schema.js';
import { buildTestApp } from '../../helpers/app.js';
import { register, STRONG_PASSWORD, uniqueEmail } from '../../helpers/session-flow.js';
import { startSmtpSink } from '../../helpers/smtp.js';

const smtp = await startSmtpSink(t);
const { app } = await buildTestApp(t, { env: { SMTP_URL: smtp.url, APP_URL: 'https://app.example.com' } });

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
