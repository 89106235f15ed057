// Action tokens on real Postgres, minted through the real routes and read from a real SMTP server: each works for its
// own purpose only (and a wrong-purpose presentation leaves it intact), only its SHA-256 is stored with purpose, user,
// target email, expiry and use time, the raw token is in no table, and housekeeping prunes expired rows, used or not,
// and keeps live ones.
import { createHash } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { actionTokens } from '../../../src/db/schema.js';
import { pruneExpired } from '../../../src/modules/sessions/housekeeping.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  type Account,
  assertError,
  bearer,
  login,
  register,
  STRONG_PASSWORD,
  uniqueEmail,
} from '../../helpers/session-flow.js';
import { startSmtpSink } from '../../helpers/smtp.js';

const TTL = { verify: 86_400, reset: 1800, change: 3600 };
const MINUTE = 60_000;
const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000);
const smtp = await startSmtpSink(t);
const { app } = await buildTestApp(t, {
  clock,
  env: {
    SMTP_URL: smtp.url,
    APP_URL: 'https://app.example.com',
    VERIFY_EMAIL_TTL: String(TTL.verify),
    PASSWORD_RESET_TTL: String(TTL.reset),
    EMAIL_CHANGE_TTL: String(TTL.change),
  },
});

const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });
const verifyEmail = (token: string) => post('/auth/verify-email', { token });
const resetPassword = (token: string, newPassword = 'a reset passphrase 77') =>
  post('/auth/password-reset', { token, newPassword });
const confirmEmail = (token: string) => post('/auth/email/confirm', { token });

const hashOf = (token: string) => createHash('sha256').update(token).digest('base64url');
const rowOf = async (token: string) =>
  (
    await app.db
      .select()
      .from(actionTokens)
      .where(eq(actionTokens.tokenHash, hashOf(token)))
  )[0];

/** The token of the newest mail to `email` once `count` mails reached it. */
async function tokenMailed(email: string, count: number): Promise<string> {
  await app.accounts.settled();
  const mails = await smtp.waitFor(email, count);
  const token = mails[count - 1]?.token;
  if (!token) throw new Error(`mail ${count} to ${email} holds no token`);
  return token;
}

/** A user with its three links: verification (registration), password reset, and email change to `newEmail`. */
async function userWithThreeTokens(t: Test) {
  const account = await register(app);
  const verify = await tokenMailed(account.email, 1);
  t.equal((await post('/auth/password-reset/request', { email: account.email })).statusCode, 202);
  const reset = await tokenMailed(account.email, 2);
  const session = await login(app, account);
  const newEmail = uniqueEmail('new');
  const asked = await app.inject({
    method: 'POST',
    url: '/auth/email',
    headers: bearer(session.accessToken),
    payload: { newEmail, currentPassword: STRONG_PASSWORD },
  });
  t.equal(asked.statusCode, 202);
  const change = await tokenMailed(newEmail, 1);
  return { account, newEmail, tokens: { verify, reset, change } };
}

async function assertUnused(t: Test, token: string, label: string) {
  const row = await rowOf(token);
  t.ok(row, `${label}: still stored`);
  t.equal(row?.usedAt, null, `${label}: still unused`);
}

t.test('a token works for its own purpose only; a wrong-purpose presentation leaves it intact', async (t) => {
  const { account, newEmail, tokens } = await userWithThreeTokens(t);

  assertError(t, await resetPassword(tokens.verify), 400, 'ACTION_TOKEN_INVALID', 'verification token at reset');
  assertError(t, await confirmEmail(tokens.verify), 400, 'ACTION_TOKEN_INVALID', 'verification token at confirm');
  assertError(t, await verifyEmail(tokens.reset), 400, 'ACTION_TOKEN_INVALID', 'reset token at verify');
  assertError(t, await confirmEmail(tokens.reset), 400, 'ACTION_TOKEN_INVALID', 'reset token at confirm');
  assertError(t, await verifyEmail(tokens.change), 400, 'ACTION_TOKEN_INVALID', 'change token at verify');
  assertError(t, await resetPassword(tokens.change), 400, 'ACTION_TOKEN_INVALID', 'change token at reset');
  for (const [label, token] of Object.entries(tokens)) await assertUnused(t, token, label);

  // Nothing happened to the account meanwhile.
  const unchanged = await login(app, account);
  t.equal(unchanged.response.json().user.emailVerified, false, 'still unverified');
  t.equal(unchanged.response.json().user.email, account.email, 'same email');

  // Each still works for its own purpose.
  const verified = await verifyEmail(tokens.verify);
  t.equal(verified.statusCode, 200, 'the verification token verifies');
  t.equal(verified.json().user.emailVerified, true);
  t.equal((await resetPassword(tokens.reset)).statusCode, 204, 'the reset token resets');
  const moved = await confirmEmail(tokens.change);
  t.equal(moved.statusCode, 200, 'the change token changes');
  t.equal(moved.json().user.email, newEmail);
});

t.test('storage: only the SHA-256, with purpose, user, target email, expiry and use time', async (t) => {
  const mintedAt = clock.now();
  const { account, newEmail, tokens } = await userWithThreeTokens(t);
  const expected = {
    verify: { purpose: 'verify_email', email: account.email, ttl: TTL.verify },
    reset: { purpose: 'password_reset', email: account.email, ttl: TTL.reset },
    change: { purpose: 'email_change', email: newEmail, ttl: TTL.change },
  } as const;

  for (const key of ['verify', 'reset', 'change'] as const) {
    const token = tokens[key];
    const want = expected[key];
    t.match(token, /^[A-Za-z0-9_-]{43,}$/, `${key}: base64url, at least 43 characters`);
    t.ok(Buffer.from(token, 'base64url').length >= 32, `${key}: at least 256 bits`);
    const row = await rowOf(token);
    t.ok(row, `${key}: found by token_hash = base64url(sha256(token))`);
    if (!row) continue;
    t.equal(row.tokenHash, hashOf(token));
    t.notOk(JSON.stringify(row).includes(token), `${key}: the raw token is nowhere in the row`);
    t.equal(row.purpose, want.purpose, `${key}: purpose`);
    t.equal(row.userId, account.id, `${key}: user`);
    t.equal(row.email, want.email, `${key}: target email`);
    t.equal(row.createdAt.getTime(), mintedAt, `${key}: created at the clock's time`);
    t.equal(row.expiresAt.getTime(), mintedAt + want.ttl * 1000, `${key}: expires after its TTL`);
    t.equal(row.usedAt, null, `${key}: unused`);
  }
  const all = await app.db.select().from(actionTokens).where(eq(actionTokens.userId, account.id));
  t.equal(all.length, 3, 'one row per link');

  // The raw tokens are in no column of any table (events and logs of the requests included).
  const tables = await app.db.execute(
    sql`select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`,
  );
  const names = (tables as unknown as { rows: { table_name: string }[] }).rows.map((table) => table.table_name);
  t.ok(names.includes('action_tokens') && names.includes('security_events'), `tables: ${names.join(', ')}`);
  for (const name of names) {
    for (const [key, token] of Object.entries(tokens)) {
      const found = await app.db.execute(
        sql`select count(*)::int as n from ${sql.identifier(name)} as t where strpos(t::text, ${token}) > 0`,
      );
      t.equal((found as unknown as { rows: { n: number }[] }).rows[0]?.n, 0, `${key} token not in ${name}`);
    }
  }

  // Use sets used_at to the clock's time.
  clock.advance(5000);
  const usedAt = clock.now();
  t.equal((await verifyEmail(tokens.verify)).statusCode, 200);
  t.equal((await rowOf(tokens.verify))?.usedAt?.getTime(), usedAt, 'verification: used_at');
  t.equal((await resetPassword(tokens.reset)).statusCode, 204);
  t.equal((await rowOf(tokens.reset))?.usedAt?.getTime(), usedAt, 'reset: used_at');
  t.equal((await confirmEmail(tokens.change)).statusCode, 200);
  t.equal((await rowOf(tokens.change))?.usedAt?.getTime(), usedAt, 'change: used_at');
});

t.test('housekeeping prunes expired action tokens, used or not, and keeps live ones', async (t) => {
  clock.advance(MINUTE);
  // An unverified user with a reset link (expires first) and a verification link (lives a day).
  const pending: Account = await register(app);
  const pendingVerify = await tokenMailed(pending.email, 1);
  t.equal((await post('/auth/password-reset/request', { email: pending.email })).statusCode, 202);
  const pendingReset = await tokenMailed(pending.email, 2);
  // A verified user: its verification link is used but not yet expired.
  const done = await register(app);
  const doneVerify = await tokenMailed(done.email, 1);
  t.equal((await verifyEmail(doneVerify)).statusCode, 200);

  // Past the reset TTL: the reset link (and the previous tests' short-lived ones) expired; the rest are live.
  clock.advance(TTL.reset * 1000 + MINUTE);
  const now = new Date(clock.now());
  const all = await app.db.select().from(actionTokens);
  const expired = all.filter((row) => row.expiresAt <= now).map((row) => row.id);
  const live = all.filter((row) => row.expiresAt > now).map((row) => row.id);
  const idOf = async (token: string) => (await rowOf(token))?.id;
  t.ok(expired.includes((await idOf(pendingReset)) as string), 'the unused reset link has expired');
  t.ok(expired.length >= 2, 'used expired rows too (the earlier tests’ reset links)');
  t.ok(live.includes((await idOf(pendingVerify)) as string) && live.includes((await idOf(doneVerify)) as string));

  const first = await pruneExpired(app.db, now);
  t.equal(first.actionTokens, expired.length, 'every expired row pruned');
  const left = (await app.db.select({ id: actionTokens.id }).from(actionTokens)).map((row) => row.id);
  t.strictSame(left.sort(), live.sort(), 'exactly the live rows remain');
  t.notOk(await rowOf(pendingReset), 'the expired reset link is gone');
  t.ok((await rowOf(doneVerify))?.usedAt, 'a used, live row stays');
  assertError(t, await resetPassword(pendingReset), 400, 'ACTION_TOKEN_INVALID', 'a pruned token is unknown');

  // A live one kept by the pruning still works.
  const verified = await verifyEmail(pendingVerify);
  t.equal(verified.statusCode, 200, 'a kept link still verifies');

  // A day later every remaining row has expired, used or not.
  clock.advance(TTL.verify * 1000);
  const second = await pruneExpired(app.db, new Date(clock.now()));
  t.equal(second.actionTokens, live.length, 'the rest expired and went');
  t.equal((await app.db.select().from(actionTokens)).length, 0, 'the table is empty');
  t.equal((await pruneExpired(app.db, new Date(clock.now()))).actionTokens, 0, 'a third run finds nothing');
});
