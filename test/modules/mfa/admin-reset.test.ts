// DELETE /users/:id/mfa (users:manage): the account-recovery path. The user's TOTP and recovery codes go, every
// session of the user is revoked at once (refresh and access tokens), a pending second step dies, mfa_reset is
// recorded, and the next login is one step.
import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import t from 'tap';
import { recoveryCodes, totpFactors } from '../../../src/db/schema.js';
import { getUser, loginAdmin } from '../../helpers/admin.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  assertError,
  bearer,
  claimsOf,
  eventsOf,
  type LoggedIn,
  loginRequest,
  me,
  refresh,
  registerAndLogin,
  sessionRow,
} from '../../helpers/session-flow.js';
import { codeNow, enrolTotp, startMfaLogin, stepAlignedClock, verifyMfa } from '../../helpers/totp-flow.js';

const clock = stepAlignedClock(TestClock);
const { app } = await buildTestApp(t, { clock, env: { EMAIL_VERIFICATION: 'off', ACCESS_TOKEN_TTL: '86400' } });
const admin = await loginAdmin(app);

const resetMfa = (token: string | undefined, id: string) =>
  app.inject({ method: 'DELETE', url: `/users/${id}/mfa`, headers: token ? bearer(token) : {} });

const factorRows = (userId: string) => app.db.select().from(totpFactors).where(eq(totpFactors.userId, userId));
const codeRows = (userId: string) => app.db.select().from(recoveryCodes).where(eq(recoveryCodes.userId, userId));

t.test('who may reset: users:manage only; unknown and malformed ids', async (t) => {
  const plain = await registerAndLogin(app);
  const target = await registerAndLogin(app);
  await enrolTotp(app, clock, target.accessToken, target.account.password);

  assertError(t, await resetMfa(plain.accessToken, target.account.id), 403, 'FORBIDDEN', 'a plain user');
  const own = await resetMfa(target.accessToken, target.account.id);
  assertError(t, own, 403, 'FORBIDDEN', 'a user on itself (no users:manage)');
  t.match(own.headers['www-authenticate'], /insufficient_scope/, 'insufficient_scope');
  assertError(t, await resetMfa(undefined, target.account.id), 401, 'TOKEN_MISSING', 'anonymous');
  assertError(t, await resetMfa(admin.accessToken, randomUUID()), 404, 'NOT_FOUND', 'unknown id');
  assertError(t, await resetMfa(admin.accessToken, 'not-a-uuid'), 400, 'VALIDATION_FAILED', 'malformed id');

  t.equal((await factorRows(target.account.id)).length, 1, 'none of that touched the factor');
  t.equal((await codeRows(target.account.id)).length, 10, 'nor the codes');
  t.equal((await me(app, target.accessToken)).statusCode, 200, 'nor the sessions');
  t.equal((await eventsOf(app, target.account.id, 'mfa_reset')).length, 0);
});

t.test('a reset removes TOTP and recovery codes, revokes every session, and the next login is one step', async (t) => {
  const bystander = await registerAndLogin(app);
  const before: LoggedIn = await registerAndLogin(app);
  const { account } = before;
  const totp = await enrolTotp(app, clock, before.accessToken, account.password);
  // A second session, opened with the second factor, and a second step left pending.
  const mfaToken = await startMfaLogin(app, account);
  const strong = (await verifyMfa(app, { mfaToken, code: codeNow(totp.secret, clock) })).json();
  t.strictSame(claimsOf(strong.accessToken).amr, ['pwd', 'otp', 'mfa']);
  clock.advance(30_000);
  const pending = await startMfaLogin(app, account);

  const response = await resetMfa(admin.accessToken, account.id);
  t.equal(response.statusCode, 204);
  t.equal(response.body, '');

  t.equal((await factorRows(account.id)).length, 0, 'the TOTP factor is gone');
  t.equal((await codeRows(account.id)).length, 0, 'the recovery codes are gone');
  t.equal((await getUser(app, admin.accessToken, account.id)).json().user.mfaEnabled, false, 'mfaEnabled false');

  for (const [label, session] of [
    ['the session from before TOTP', { accessToken: before.accessToken, refreshToken: before.refreshToken }],
    ['the session opened with TOTP', { accessToken: strong.accessToken, refreshToken: strong.refreshToken }],
  ] as const) {
    assertError(t, await me(app, session.accessToken), 401, 'TOKEN_REVOKED', `${label}: access token`);
    assertError(t, await refresh(app, session.refreshToken), 401, 'REFRESH_TOKEN_INVALID', `${label}: refresh`);
  }
  t.ok((await sessionRow(app, claimsOf(strong.accessToken).sid))?.revokedAt, 'revoked in Postgres');
  assertError(
    t,
    await verifyMfa(app, { mfaToken: pending, code: codeNow(totp.secret, clock) }),
    401,
    'MFA_TOKEN_INVALID',
    'the pending second step died with the factor',
  );

  const events = await eventsOf(app, account.id, 'mfa_reset');
  t.equal(events.length, 1, 'mfa_reset recorded');
  t.match(events[0]?.details, { by: admin.account.id, sessionsRevoked: 2 }, 'naming the admin');

  t.equal((await me(app, admin.accessToken)).statusCode, 200, "the admin's session is untouched");
  t.equal((await me(app, bystander.accessToken)).statusCode, 200, "another user's too");

  const next = await loginRequest(app, account.email, account.password);
  t.equal(next.statusCode, 200, 'the next login');
  t.notOk(next.json().mfaRequired, 'is one step');
  t.strictSame(claimsOf(next.json().accessToken).amr, ['pwd']);
  t.equal((await me(app, next.json().accessToken)).statusCode, 200, 'and its tokens work');

  // The user can enrol again, with a new secret.
  const again = await enrolTotp(app, clock, next.json().accessToken, account.password);
  t.not(again.secret, totp.secret);
  t.equal((await loginRequest(app, account.email, account.password)).json().mfaRequired, true, 'two steps again');
});
