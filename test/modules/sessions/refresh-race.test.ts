// Concurrent presentations of one refresh token with REFRESH_REUSE_INTERVAL=0 (no grace): the row locks serialise
// them, so exactly one rotation wins and every other presentation is refused, never a 5xx.
import { randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { refreshTokens } from '../../../src/db/schema.js';
import { buildTestApp, makeKeysDir } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  assertError,
  codeOf,
  eventsOf,
  me,
  refresh,
  registerAndLogin,
  sessionRow,
} from '../../helpers/session-flow.js';

const { app } = await buildTestApp(t, { env: { REFRESH_REUSE_INTERVAL: '0' } });

// Ten rounds: one race can come out in the safe order by luck.
for (let round = 1; round <= 10; round++) {
  t.test(`round ${round}: twenty parallel refreshes of one token: exactly one 200, the rest 401, no 5xx`, (t) =>
    raceOneToken(t),
  );
}

async function raceOneToken(t: Test) {
  const first = await registerAndLogin(app);
  const responses = await Promise.all(Array.from({ length: 20 }, () => refresh(app, first.refreshToken)));
  const statuses = responses.map((response) => response.statusCode);
  t.equal(statuses.filter((status) => status >= 500).length, 0, `no 5xx (${statuses.join(',')})`);
  t.equal(statuses.filter((status) => status === 200).length, 1, 'exactly one 200');
  t.equal(statuses.filter((status) => status === 401).length, 19, 'the other nineteen 401');

  // Serialised: the winner rotates, the next presentation is reuse and ends the session, the rest find it revoked.
  const codes = responses.filter((response) => response.statusCode === 401).map(codeOf);
  t.equal(codes.filter((code) => code === 'REFRESH_TOKEN_REUSED').length, 1, 'one REFRESH_TOKEN_REUSED');
  t.equal(codes.filter((code) => code === 'REFRESH_TOKEN_INVALID').length, 18, 'then REFRESH_TOKEN_INVALID');

  const winner = responses.find((response) => response.statusCode === 200)?.json();
  assertError(t, await refresh(app, winner.refreshToken), 401, 'REFRESH_TOKEN_INVALID', "the winner's refresh token");
  assertError(t, await me(app, winner.accessToken), 401, 'TOKEN_REVOKED', "the winner's access token");
  t.ok((await sessionRow(app, first.sessionId))?.revokedAt, 'session revoked');
  const family = await app.db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, first.sessionId));
  t.equal(family.length, 2, 'one rotation only: the login token and one child');
  t.equal((await eventsOf(app, first.account.id, 'refresh_token_reused')).length, 1, 'one reuse event');
}

t.test('with no grace interval, an immediate second presentation is reuse', async (t) => {
  const first = await registerAndLogin(app);
  const rotated = await refresh(app, first.refreshToken);
  t.equal(rotated.statusCode, 200);
  assertError(t, await refresh(app, first.refreshToken), 401, 'REFRESH_TOKEN_REUSED');
  assertError(t, await refresh(app, rotated.json().refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'the child');
  assertError(t, await me(app, rotated.json().accessToken), 401, 'TOKEN_REVOKED', "the child's access token");
});

t.test('parallel refreshes of different sessions do not interfere', async (t) => {
  const logins = await Promise.all(Array.from({ length: 5 }, () => registerAndLogin(app)));
  const responses = await Promise.all(logins.map((login) => refresh(app, login.refreshToken)));
  t.strictSame(
    responses.map((response) => response.statusCode),
    [200, 200, 200, 200, 200],
  );
});

t.test(
  'no grace means none across instances: one whose clock is behind the rotating one still sees reuse',
  async (t) => {
    // The rotating instance's clock is a second ahead, so the token's first use is in the future of the other's.
    const now = Date.now();
    const keysDir = await makeKeysDir(t);
    const env = { REFRESH_REUSE_INTERVAL: '0', SESSION_SECRET: randomBytes(32).toString('base64url') };
    const ahead = await buildTestApp(t, { env, keysDir, clock: new TestClock(now + 1000) });
    const behind = await buildTestApp(t, {
      env,
      keysDir,
      clock: new TestClock(now),
      databaseUrl: ahead.databaseUrl,
      redisKeyPrefix: ahead.redisKey(''),
    });
    const first = await registerAndLogin(ahead.app);
    const rotated = await refresh(ahead.app, first.refreshToken);
    t.equal(rotated.statusCode, 200);
    assertError(
      t,
      await refresh(behind.app, first.refreshToken),
      401,
      'REFRESH_TOKEN_REUSED',
      'on the instance behind',
    );
    assertError(t, await refresh(ahead.app, rotated.json().refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'the child');
    t.ok((await sessionRow(ahead.app, first.sessionId))?.revokedAt, 'session revoked');
  },
);
