// pruneExpired on real Postgres, with sessions aged by a movable clock: expired sessions (with their refresh tokens),
// sessions revoked over the retention period, expired refresh tokens, expired revocations and expired second-step
// challenges go; live ones stay.
import { eq, inArray, lt } from 'drizzle-orm';
import t from 'tap';
import { mfaChallenges, refreshTokens, revocations, sessions } from '../../../src/db/schema.js';
import { sha256 } from '../../../src/lib/ids.js';
import { pruneExpired, REVOKED_SESSION_RETENTION_MS } from '../../../src/modules/sessions/housekeeping.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  assertError,
  bearer,
  type LoggedIn,
  refresh,
  refreshTokenRow,
  registerAndLogin,
  sessionRow,
} from '../../helpers/session-flow.js';
import { codeNow, enrolTotp, nextStep, startMfaLogin, verifyMfa, wrongCodeNow } from '../../helpers/totp-flow.js';

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;

const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000);
const { app } = await buildTestApp(t, {
  clock,
  env: {
    ACCESS_TOKEN_TTL: '60',
    REFRESH_TOKEN_TTL: '3600',
    SESSION_MAX_AGE: String((2 * DAY) / 1000),
    // No verification links: this file counts sessions; action tokens are pruned in accounts/action-tokens.test.ts.
    EMAIL_VERIFICATION: 'off',
  },
});

const logoutByRefresh = (session: LoggedIn) =>
  app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: session.refreshToken } });

t.test('retention is a day', async (t) => {
  t.equal(REVOKED_SESSION_RETENTION_MS, DAY);
});

t.test('pruneExpired removes what can no longer matter and keeps the rest', async (t) => {
  const t0 = clock.now();
  // T0: a session that will expire, with a rotated family; a revoked one; one logged out by access token.
  const expiring = await registerAndLogin(app);
  const expiringChild = (await refresh(app, expiring.refreshToken)).json();
  const revokedThenExpired = await registerAndLogin(app);
  t.equal((await logoutByRefresh(revokedThenExpired)).statusCode, 204);
  const loggedOutByAccess = await registerAndLogin(app);
  const byAccess = await app.inject({
    method: 'POST',
    url: '/auth/logout',
    headers: bearer(loggedOutByAccess.accessToken),
  });
  t.equal(byAccess.statusCode, 204);

  // T0 + 1 day: a live session whose first refresh token will expire; one revoked at once (over a day before T1).
  clock.set(t0 + DAY);
  const middle = await registerAndLogin(app);
  const revokedLongAgo = await registerAndLogin(app);
  t.equal((await logoutByRefresh(revokedLongAgo)).statusCode, 204);

  // T0 + 1 day + 2 h: revoked less than a day before T1.
  clock.set(t0 + DAY + 2 * HOUR);
  const revokedRecently = await registerAndLogin(app);
  t.equal((await logoutByRefresh(revokedRecently)).statusCode, 204);

  // T1 = T0 + 2 days + 1 s: a live, rotated session; one revoked just now.
  const t1 = t0 + 2 * DAY + 1000;
  clock.set(t1);
  const live = await registerAndLogin(app);
  const liveChild = (await refresh(app, live.refreshToken)).json();
  const revokedNow = await registerAndLogin(app);
  t.equal((await logoutByRefresh(revokedNow)).statusCode, 204);

  const gone = [expiring, revokedThenExpired, loggedOutByAccess, revokedLongAgo].map((s) => s.sessionId);
  const kept = [middle, revokedRecently, live, revokedNow].map((s) => s.sessionId);
  const expiredRevocations = await app.db
    .select()
    .from(revocations)
    .where(lt(revocations.expiresAt, new Date(t1)));
  const allRevocations = await app.db.select().from(revocations);
  t.ok(expiredRevocations.length >= 5, 'several revocations have expired');
  t.ok(allRevocations.length > expiredRevocations.length, 'and some have not');

  const expiredTokens = await app.db
    .select({ id: refreshTokens.id })
    .from(refreshTokens)
    .where(lt(refreshTokens.expiresAt, new Date(clock.now())));
  const result = await pruneExpired(app.db, new Date(clock.now()));
  t.strictSame(result, {
    sessions: 4,
    // Every expired token, those of dead sessions included: they go first, so deleting a session cascades to few.
    refreshTokens: expiredTokens.length,
    revocations: expiredRevocations.length,
    actionTokens: 0,
    mfaChallenges: 0,
    webauthnChallenges: 0,
  });

  const remaining = await app.db.select({ id: sessions.id }).from(sessions);
  t.strictSame(remaining.map((row) => row.id).sort(), [...kept].sort(), 'exactly the expected sessions remain');
  const orphans = await app.db.select().from(refreshTokens).where(inArray(refreshTokens.sessionId, gone));
  t.equal(orphans.length, 0, 'the refresh tokens of pruned sessions went with them');
  t.notOk(await refreshTokenRow(app, expiringChild.refreshToken), 'including rotated children');
  t.notOk(await refreshTokenRow(app, middle.refreshToken), 'an expired token of a live session is gone');
  t.ok(await sessionRow(app, middle.sessionId), 'but its session stays');
  t.ok(await refreshTokenRow(app, live.refreshToken), 'a used, unexpired token stays, for reuse detection');
  t.ok(await refreshTokenRow(app, liveChild.refreshToken));
  t.ok(await refreshTokenRow(app, revokedNow.refreshToken), 'a revoked, unexpired token stays');

  const left = await app.db.select().from(revocations);
  t.equal(left.length, allRevocations.length - expiredRevocations.length, 'only live revocations remain');
  t.ok(
    left.every((row) => row.expiresAt.getTime() >= t1),
    'none of them expired',
  );
  const [revokedNowEntry] = await app.db.select().from(revocations).where(eq(revocations.value, revokedNow.sessionId));
  t.equal(revokedNowEntry?.kind, 'sid', "the live session revocation's row stays");

  // What stays keeps working as before.
  t.equal((await refresh(app, liveChild.refreshToken)).statusCode, 200, 'the live session refreshes');
  clock.advance(60_000);
  assertError(t, await refresh(app, live.refreshToken), 401, 'REFRESH_TOKEN_REUSED', 'reuse is still detected');
  assertError(t, await refresh(app, revokedNow.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'revoked stays revoked');
  assertError(t, await refresh(app, expiring.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'a pruned token is unknown');

  t.strictSame(
    await pruneExpired(app.db, new Date(clock.now())),
    { sessions: 0, refreshTokens: 0, revocations: 0, actionTokens: 0, mfaChallenges: 0, webauthnChallenges: 0 },
    'a second run finds nothing',
  );
});

t.test('pruneExpired removes expired second steps (used, dead or not) and keeps live ones', async (t) => {
  const user = await registerAndLogin(app);
  const { secret } = await enrolTotp(app, clock, user.accessToken, user.account.password);
  // Whatever else has expired by now goes first, so the counts below are this test's alone.
  await pruneExpired(app.db, new Date(clock.now()));

  const tA = clock.now();
  const unused = await startMfaLogin(app, user.account);
  const used = await startMfaLogin(app, user.account);
  t.equal((await verifyMfa(app, { mfaToken: used, code: codeNow(secret, clock) })).statusCode, 200);
  clock.advance(100_000);
  const live = await startMfaLogin(app, user.account);
  const killed = await startMfaLogin(app, user.account);
  for (let attempt = 0; attempt < 5; attempt++) {
    t.equal((await verifyMfa(app, { mfaToken: killed, code: wrongCodeNow(secret, clock) })).statusCode, 401);
  }
  const rowOf = async (token: string) =>
    (
      await app.db
        .select()
        .from(mfaChallenges)
        .where(eq(mfaChallenges.tokenHash, sha256(token)))
    )[0];

  // Exactly at the expiry of the first two: they are dead (expires_at <= now), so they go.
  clock.set(tA + 300_000);
  const { revocations: _revocations, ...first } = await pruneExpired(app.db, new Date(clock.now()));
  t.strictSame(
    first,
    { sessions: 0, refreshTokens: 0, actionTokens: 0, mfaChallenges: 2, webauthnChallenges: 0 },
    'two expired challenges',
  );
  t.notOk(await rowOf(unused), 'the unused expired one is gone');
  t.notOk(await rowOf(used), 'the used expired one is gone');
  t.ok(await rowOf(live), 'the live one stays');
  t.ok(await rowOf(killed), 'one dead by wrong codes stays until it expires (it is refused either way)');
  assertError(t, await verifyMfa(app, { mfaToken: unused, code: codeNow(secret, clock) }), 401, 'MFA_TOKEN_INVALID');

  nextStep(clock);
  t.equal((await verifyMfa(app, { mfaToken: live, code: codeNow(secret, clock) })).statusCode, 200, 'live still works');

  clock.set(tA + 400_000);
  const { revocations: _later, ...second } = await pruneExpired(app.db, new Date(clock.now()));
  t.strictSame(
    second,
    { sessions: 0, refreshTokens: 0, actionTokens: 0, mfaChallenges: 2, webauthnChallenges: 0 },
    'then the other two',
  );
  t.equal((await app.db.select().from(mfaChallenges)).length, 0, 'no challenge left');
});

t.test('a backlog larger than a batch is deleted whole, batch by batch, and live rows stay', async (t) => {
  const { pruneSessions } = await import('../../../src/modules/sessions/sessions.repository.js');
  const live = await registerAndLogin(app);
  const now = clock.now();
  const [user] = await app.db.select({ userId: sessions.userId }).from(sessions).where(eq(sessions.id, live.sessionId));
  const userId = user?.userId as string;
  // 25 dead sessions (expired an hour ago), each with two expired refresh tokens: 2.5 batches of 10 sessions.
  const dead = await app.db
    .insert(sessions)
    .values(
      Array.from({ length: 25 }, () => ({
        userId,
        createdAt: new Date(now - 3 * DAY),
        lastUsedAt: new Date(now - 2 * DAY),
        expiresAt: new Date(now - HOUR),
      })),
    )
    .returning({ id: sessions.id });
  await app.db.insert(refreshTokens).values(
    dead.flatMap(({ id }, index) =>
      [0, 1].map((n) => ({
        sessionId: id,
        tokenHash: sha256(`backlog-${index}-${n}-${now}`),
        issuedAt: new Date(now - 2 * DAY),
        expiresAt: new Date(now - HOUR),
      })),
    ),
  );
  const deleted = await pruneSessions(app.db, new Date(now), REVOKED_SESSION_RETENTION_MS, 10);
  t.same(deleted, { sessions: 25, refreshTokens: 50 }, 'every dead row, in several batches');
  const left = await app.db
    .select({ id: sessions.id })
    .from(sessions)
    .where(
      inArray(
        sessions.id,
        dead.map(({ id }) => id),
      ),
    );
  t.equal(left.length, 0, 'no dead session left');
  t.equal((await sessionRow(app, live.sessionId))?.revokedAt ?? null, null, 'the live session stays');
  t.equal((await refresh(app, live.refreshToken)).statusCode, 200, 'and still refreshes');
});
