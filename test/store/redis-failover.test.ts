// What a failover can do to the deny-list, on private redis-server processes: the key layout of an older version is
// not trusted, a reconnection makes this instance distrust the store until it rebuilds it (a promoted replica may
// lack acknowledged writes yet hold the epoch), and a demoted master's READONLY makes the client reconnect.
import t, { type Test } from 'tap';
import { DependencyUnavailable } from '../../src/errors.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { denyKey } from '../../src/store/store.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { clientOf, waitFor } from '../helpers/redis-topology.js';

const keyPrefix = 'auth:';
const primary = await startRedisServer(t);
const raw = await clientOf(t, primary.port);

async function open(t: Test, url = primary.url): Promise<RedisStore> {
  const store = await RedisStore.open({ target: url, keyPrefix, onError: () => undefined });
  t.teardown(() => store.close());
  return store;
}

/** A rebuild as DenyList does it: under the lock, then the epoch. */
async function rebuild(store: RedisStore): Promise<void> {
  const release = await store.lockRebuild(5_000);
  await store.markSynced();
  await release?.();
}

/** The ids of this service's connections to a server. */
async function serviceClients(redis = raw): Promise<string[]> {
  const list = (await redis.client('LIST')) as string;
  return list
    .split('\n')
    .filter((line) => line.includes(' name=auth-service '))
    .map((line) => /^id=(\d+)/.exec(line)?.[1] ?? '');
}

t.test('a store in the layout before {deny} is not synced: the new layout is rebuilt first', async (t) => {
  await raw.flushall();
  // What an older version left: untagged keys and its epoch.
  await raw.set(`${keyPrefix}deny:epoch`, String(Date.now()));
  await raw.set(`${keyPrefix}deny:jti:old`, '1', 'PX', 60_000);
  const store = await open(t);
  t.equal(denyKey.epoch, '{deny}:epoch', 'the epoch was renamed with the layout');
  t.equal((await store.revocationState('old', 's', 'u')).synced, false, 'not trusted');
  await rebuild(store);
  t.equal((await store.revocationState('old', 's', 'u')).synced, true, 'trusted once rebuilt');
});

t.test('a reconnection: distrusted until this instance rebuilds, even though the epoch is there', async (t) => {
  await raw.flushall();
  const store = await open(t);
  await rebuild(store);
  t.equal((await store.revocationState('j', 's', 'u')).synced, true, 'synced');
  const before = await serviceClients();
  await raw.client('KILL', 'ID', before[0] ?? '0');
  await waitFor('the store reconnected', async () => {
    const after = await serviceClients();
    return after.length === 1 && after[0] !== before[0];
  });
  t.equal(await raw.exists(`${keyPrefix}${denyKey.epoch}`), 1, 'the epoch is still in Redis');
  t.equal((await store.revocationState('j', 's', 'u')).synced, false, 'but this instance no longer trusts it');
  await rebuild(store);
  t.equal((await store.revocationState('j', 's', 'u')).synced, true, 'until its own rebuild');
});

t.test('a reconnection during a rebuild: that rebuild does not count', async (t) => {
  await raw.flushall();
  const store = await open(t);
  const release = await store.lockRebuild(5_000);
  const before = await serviceClients();
  await raw.client('KILL', 'ID', before[0] ?? '0');
  await waitFor('the store reconnected', async () => {
    const after = await serviceClients();
    return after.length === 1 && after[0] !== before[0];
  });
  await store.markSynced();
  await release?.();
  t.equal((await store.revocationState('j', 's', 'u')).synced, false, 'its writes may have gone to the old server');
});

t.test('READONLY from a demoted master (here: a replica) fails the command and reconnects', async (t) => {
  const replica = await startRedisServer(t, ['--replicaof', '127.0.0.1', String(primary.port)]);
  const replicaRaw = await clientOf(t, replica.port);
  await waitFor('the replica in sync', async () =>
    ((await replicaRaw.info('replication')) as string).includes('master_link_status:up'),
  );
  const store = await open(t, replica.url);
  await waitFor('the store connected', async () => (await serviceClients(replicaRaw)).length === 1);
  const [before] = await serviceClients(replicaRaw);
  const error = await store.revokeToken('j', 60_000).then(
    () => undefined,
    (error: unknown) => error,
  );
  t.type(error, DependencyUnavailable, 'the write fails (503), never silently lost');
  t.match(String((error as DependencyUnavailable).cause), /READONLY/);
  await waitFor('a new connection', async () => {
    const after = await serviceClients(replicaRaw);
    return after.length === 1 && after[0] !== before;
  });
  t.pass('reconnected (a Sentinel-configured client asks the sentinels for the master on reconnecting)');
});
