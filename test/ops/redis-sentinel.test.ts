// The service behind Redis Sentinel (REDIS_URL=redis+sentinel://...): a primary, one replica and a sentinel. The
// primary is SIGKILLed after a logout; during the failover requests get 503 (or 200 for a valid token), never a 200
// for a revoked one; once the sentinel promotes the replica, requests succeed again without a restart.
// Two revoked sessions: one whose deny-list entry reached the replica (it is still 401 through replication), and one
// whose entry is deleted on the (writable) replica before the kill, as asynchronous replication may lose the last
// writes. The epoch did replicate, so only the store's distrust after a reconnect makes the app rebuild the
// deny-list from Postgres: that one is still 401 too, and its entry is back on the new master.
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';
import { clientOf, startRedisSentinel, waitFor } from '../helpers/redis-topology.js';
import { assertError, bearer, claimsOf, type LoggedIn, me, registerAndLogin } from '../helpers/session-flow.js';

const set = await startRedisSentinel(t, ['--replica-read-only', 'no']);
const { app, config } = await buildTestApp(t, { env: { REDIS_URL: set.url } });
const prefix = config.redisKeyPrefix;
const replica = await clientOf(t, set.replica.port);

const ready = () =>
  waitFor('the app ready', async () => (await app.inject({ method: 'GET', url: '/health/ready' })).statusCode === 200);

/** This session's deny-list keys (its sid, its access token's jti) as the replica holds them. */
async function denyKeysOf(session: LoggedIn): Promise<string[]> {
  const keys = await replica.keys(`${prefix}{deny}:*`);
  const ids = [session.sessionId, String(claimsOf(session.accessToken).jti)];
  return keys.filter((key) => ids.some((id) => key.endsWith(`:${id}`)));
}

t.test('the config reads the sentinel URL', async (t) => {
  t.match(config.redis, { mode: 'sentinel', name: set.masterName, sentinels: [{ port: set.sentinel.port }] });
});

t.test('primary killed: 503 or valid-only during the failover, then recovery; revoked stays revoked', async (t) => {
  await ready();
  const [replicated, lost, valid] = [
    await registerAndLogin(app),
    await registerAndLogin(app),
    await registerAndLogin(app),
  ];
  for (const session of [replicated, lost]) {
    const out = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(session.accessToken) });
    t.equal(out.statusCode, 204, 'logged out');
  }
  await waitFor(
    'both logouts replicated',
    async () => (await denyKeysOf(replicated)).length > 0 && (await denyKeysOf(lost)).length > 0,
  );
  t.equal(await replica.exists(`${prefix}{deny}:epoch`), 1, 'the epoch replicated');
  // The write asynchronous replication would have lost: gone from the replica only.
  const lostKeys = await denyKeysOf(lost);
  await replica.del(...lostKeys);
  assertError(t, await me(app, lost.accessToken), 401, 'TOKEN_REVOKED', 'still revoked on the primary');

  const killedAt = Date.now();
  await set.primary.kill();
  const seen = { replicated: new Set<number>(), lost: new Set<number>(), valid: new Set<number>() };
  await waitFor(
    'a valid token accepted on the promoted replica',
    async () => {
      const [r, l, v] = await Promise.all([
        me(app, replicated.accessToken),
        me(app, lost.accessToken),
        me(app, valid.accessToken),
      ]);
      seen.replicated.add(r.statusCode);
      seen.lost.add(l.statusCode);
      seen.valid.add(v.statusCode);
      return v.statusCode === 200;
    },
    30_000,
  );
  t.comment(`recovered ${Date.now() - killedAt} ms after the kill`);
  const shown = (statuses: Set<number>) => [...statuses].join(', ');
  t.notOk(seen.replicated.has(200), `the replicated revocation: never 200 (${shown(seen.replicated)})`);
  t.notOk(seen.lost.has(200), `the lost revocation: never 200 (${shown(seen.lost)})`);
  t.ok(
    [...seen.valid].every((status) => status === 200 || status === 503),
    `valid: 200 or 503 (${shown(seen.valid)})`,
  );
  t.ok(seen.valid.has(503), 'the outage was seen (fail closed), then recovered without a restart');

  const role = (await replica.call('ROLE')) as [string];
  t.equal(role[0], 'master', 'the sentinel promoted the replica');
  assertError(t, await me(app, replicated.accessToken), 401, 'TOKEN_REVOKED', 'replicated entry');
  assertError(t, await me(app, lost.accessToken), 401, 'TOKEN_REVOKED', 'lost entry');
  t.equal(
    await replica.exists(...lostKeys),
    lostKeys.length,
    'the lost entry was rebuilt from Postgres on the new master',
  );
  t.equal((await me(app, valid.accessToken)).statusCode, 200, 'and the valid token is fine');
});
