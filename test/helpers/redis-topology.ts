// Private Redis topologies for the operations tests: a three-master Cluster, or a primary, a replica and a
// sentinel. Every process is a redis-server of startRedisServer (its own free port, stopped by its pid).
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import type { Teardown } from './app.js';
import { type RedisProcess, startRedisServer } from './redis-server.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 100 ms until it holds, failing with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

async function tempDir(t: Teardown, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A plain client of one process (no prefix), closed at teardown. */
export async function clientOf(t: Teardown, port: number): Promise<Redis> {
  const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  await redis.connect();
  t.teardown(() => redis.disconnect());
  return redis;
}

export interface RedisCluster {
  nodes: RedisProcess[];
  /** REDIS_CLUSTER_NODES for these nodes. */
  nodesEnv: string;
}

/** Three masters, no replicas, every slot assigned; resolves once each node reports cluster_state:ok. */
export async function startRedisCluster(t: Teardown, size = 3): Promise<RedisCluster> {
  const dir = await tempDir(t, 'redis-cluster-');
  const nodes = await Promise.all(
    Array.from({ length: size }, () =>
      startRedisServer(t, ['--cluster-enabled', 'yes', '--cluster-node-timeout', '2000'], {
        portArgs: (port) => ['--cluster-config-file', path.join(dir, `nodes-${port}.conf`)],
      }),
    ),
  );
  const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
  await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], {
    timeout: 20_000,
  });
  const clients = await Promise.all(nodes.map((node) => clientOf(t, node.port)));
  await waitFor('cluster_state:ok on every node', async () => {
    const infos = await Promise.all(clients.map((client) => client.cluster('INFO') as Promise<string>));
    return infos.every((info) => info.includes('cluster_state:ok'));
  });
  return { nodes, nodesEnv: addresses.join(',') };
}

export interface RedisSentinelSet {
  primary: RedisProcess;
  replica: RedisProcess;
  sentinel: RedisProcess;
  masterName: string;
  /** REDIS_URL for the app: redis+sentinel://127.0.0.1:<sentinel>/<masterName>. */
  url: string;
}

/** A primary, its replica (in sync) and one sentinel watching them with a short down-after. */
export async function startRedisSentinel(t: Teardown, replicaArgs: string[] = []): Promise<RedisSentinelSet> {
  const masterName = 'm';
  const primary = await startRedisServer(t);
  const replica = await startRedisServer(t, ['--replicaof', '127.0.0.1', String(primary.port), ...replicaArgs]);
  const replicaClient = await clientOf(t, replica.port);
  await waitFor('the replica in sync', async () =>
    ((await replicaClient.info('replication')) as string).includes('master_link_status:up'),
  );
  const dir = await tempDir(t, 'redis-sentinel-');
  const configFile = path.join(dir, 'sentinel.conf');
  await writeFile(
    configFile,
    [
      `sentinel monitor ${masterName} 127.0.0.1 ${primary.port} 1`,
      `sentinel down-after-milliseconds ${masterName} 1000`,
      `sentinel failover-timeout ${masterName} 5000`,
      `sentinel parallel-syncs ${masterName} 1`,
      '',
    ].join('\n'),
  );
  const sentinel = await startRedisServer(t, ['--sentinel'], { configFile });
  const sentinelClient = await clientOf(t, sentinel.port);
  // The sentinel must have found the replica, or it has nobody to promote.
  await waitFor('the sentinel to know the replica', async () => {
    const replicas = (await sentinelClient.call('SENTINEL', 'REPLICAS', masterName)) as string[][];
    return replicas.some((fields) => fields.includes(String(replica.port)));
  });
  return { primary, replica, sentinel, masterName, url: `redis+sentinel://127.0.0.1:${sentinel.port}/${masterName}` };
}
