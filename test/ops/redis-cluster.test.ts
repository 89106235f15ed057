// The service on a real three-master Redis Cluster (REDIS_CLUSTER_NODES): logout, the deny-list, refresh rotation
// and rate limits work through ioredis's Cluster client, from two instances; every deny-list key lands in one slot
// (the {deny} hash tag, so the verifier's MGET never fails CROSSSLOT) while counters spread over the nodes; and a
// master that dies and comes back empty gives 503, then a rebuilt deny-list, without restarting the app.
import t from 'tap';
import type { App } from '../../src/app.js';
import { buildTestApp } from '../helpers/app.js';
import { clientOf, startRedisCluster, waitFor } from '../helpers/redis-topology.js';
import { assertError, bearer, loginRequest, me, refresh, register, registerAndLogin } from '../helpers/session-flow.js';

const cluster = await startRedisCluster(t);
const env = { REDIS_URL: '', REDIS_CLUSTER_NODES: cluster.nodesEnv, REFRESH_REUSE_INTERVAL: '0' };
const a = await buildTestApp(t, {
  env: { ...env, RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_LOGIN_FAILURES: '3' },
});
const b = await buildTestApp(t, {
  env,
  databaseUrl: a.databaseUrl,
  keysDir: a.config.keysDir,
  redisKeyPrefix: a.config.redisKeyPrefix,
});
const prefix = a.config.redisKeyPrefix;
const clients = await Promise.all(cluster.nodes.map((node) => clientOf(t, node.port)));

const ready = (app: App) =>
  waitFor('the app ready', async () => (await app.inject({ method: 'GET', url: '/health/ready' })).statusCode === 200);

/** Every key of this test's prefix, by node. */
async function keysByNode(): Promise<string[][]> {
  return Promise.all(clients.map((client) => client.keys(`${prefix}*`)));
}

t.test('the config names the cluster', async (t) => {
  t.match(a.config.redis, { mode: 'cluster', nodes: cluster.nodes.map((node) => ({ port: node.port })) });
  t.equal(a.app.store.kind, 'redis');
});

t.test('logout: the revoked access token is rejected by both instances', async (t) => {
  await Promise.all([ready(a.app), ready(b.app)]);
  const session = await registerAndLogin(a.app);
  t.equal((await me(a.app, session.accessToken)).statusCode, 200, 'valid on a');
  t.equal((await me(b.app, session.accessToken)).statusCode, 200, 'valid on b');
  const out = await a.app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(session.accessToken) });
  t.equal(out.statusCode, 204);
  assertError(t, await me(a.app, session.accessToken), 401, 'TOKEN_REVOKED', 'on a');
  assertError(t, await me(b.app, session.accessToken), 401, 'TOKEN_REVOKED', 'on b');
  assertError(t, await refresh(b.app, session.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'its refresh token');
});

t.test('refresh rotation, and reuse ending the session everywhere', async (t) => {
  const session = await registerAndLogin(a.app);
  const rotated = await refresh(b.app, session.refreshToken);
  t.equal(rotated.statusCode, 200, 'rotated on b');
  const fresh = rotated.json().accessToken as string;
  t.equal((await me(a.app, fresh)).statusCode, 200, 'the new access token works on a');
  const reused = await refresh(a.app, session.refreshToken);
  t.equal(reused.statusCode, 401, 'the old refresh token is reuse');
  assertError(t, await me(b.app, fresh), 401, 'TOKEN_REVOKED', 'reuse revoked the session: its tokens too');
});

t.test('logout-all: the user minimum version reaches the other instance', async (t) => {
  const first = await registerAndLogin(a.app);
  const all = await b.app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(first.accessToken) });
  t.equal(all.statusCode, 204);
  assertError(t, await me(a.app, first.accessToken), 401, 'TOKEN_REVOKED', 'every token of the user');
});

t.test('rate limits count in the cluster', async (t) => {
  const account = await register(a.app);
  const statuses: number[] = [];
  for (let attempt = 0; attempt < 5; attempt += 1) {
    statuses.push((await loginRequest(a.app, account.email, 'wrong password, certainly')).statusCode);
  }
  t.ok(statuses.includes(429), `throttled after RATE_LIMIT_LOGIN_FAILURES=3 (${statuses.join(', ')})`);
});

t.test('key layout: the deny-list in one slot, counters spread over the nodes', async (t) => {
  // Enough counters that landing on one node by chance is out of the question (3 × (1/3)^30).
  await Promise.all(Array.from({ length: 30 }, (_, index) => a.app.store.hit(`probe:${index}`, 60_000)));
  const byNode = await keysByNode();
  const all = byNode.flat();
  const deny = all.filter((key) => key.startsWith(`${prefix}{deny}:`));
  t.ok(
    deny.some((key) => key.endsWith(':epoch')),
    'the epoch is there',
  );
  t.ok(deny.length >= 4, `deny-list keys written (${deny.length})`);
  t.equal(all.filter((key) => key.startsWith(`${prefix}deny:`)).length, 0, 'nothing in the old untagged layout');
  const slots = new Set(await Promise.all(deny.map((key) => clients[0]?.cluster('KEYSLOT', key))));
  t.equal(slots.size, 1, 'every deny-list key hashes to the same slot');
  t.equal(byNode.filter((keys) => keys.some((key) => key.startsWith(`${prefix}{deny}:`))).length, 1, 'on one node');
  const counters = byNode.map((keys) => keys.filter((key) => key.startsWith(`${prefix}count:`)).length);
  t.ok(counters.filter((count) => count > 0).length > 1, `counters on more than one node (${counters.join(', ')})`);
});

t.test('the deny-list master dies and returns empty: 503, then rebuilt, without a restart', async (t) => {
  const revoked = await registerAndLogin(a.app);
  await a.app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(revoked.accessToken) });
  const valid = await registerAndLogin(a.app);
  const byNode = await keysByNode();
  const index = byNode.findIndex((keys) => keys.includes(`${prefix}{deny}:epoch`));
  const node = cluster.nodes[index];
  if (!node) throw new Error('no node holds the epoch');

  await node.kill();
  const during = await me(a.app, revoked.accessToken);
  t.equal(during.statusCode, 503, 'the revoked token: 503 while its slot is down, never 200');
  t.equal((await me(b.app, valid.accessToken)).statusCode, 503, 'a valid token: 503 too (fails closed)');

  // Same port and nodes-<port>.conf: it rejoins with its slots, but without data (no persistence).
  await node.start();
  const seen: number[] = [];
  await waitFor(
    'a valid token accepted again',
    async () => {
      const [status, revokedStatus] = [
        (await me(a.app, valid.accessToken)).statusCode,
        (await me(a.app, revoked.accessToken)).statusCode,
      ];
      seen.push(revokedStatus);
      return status === 200;
    },
    20_000,
  );
  t.notOk(seen.includes(200), `the revoked token never accepted (${[...new Set(seen)].join(', ')})`);
  assertError(t, await me(a.app, revoked.accessToken), 401, 'TOKEN_REVOKED', 'a: rebuilt from Postgres');
  await waitFor('b recovered', async () => (await me(b.app, valid.accessToken)).statusCode === 200, 20_000);
  assertError(t, await me(b.app, revoked.accessToken), 401, 'TOKEN_REVOKED', 'b');
  const rebuilt = await clients[index]?.exists(`${prefix}{deny}:epoch`);
  t.equal(rebuilt, 1, 'the epoch is back on the restarted node');
});
