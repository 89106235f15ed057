// Throughput from one to three instances: GET /users/me (token check, deny-list, one hot Postgres statement) against
// 1, then 3 service processes (bench/service.ts, production settings, rate limits off) on one database and Redis.
// The load is spread round-robin over the ports by connection: one autocannon per instance, its share of the
// connections each, run at once, req/s summed. Rerunnable: `npm run bench:scale [-- --seconds=10 --connections=30]`.
// On a machine with few cores the instances, Postgres, Redis and the load generator share them: read the table as
// what the service gains from processes, bounded by the cores, not as a cluster's scaling.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { makeKeysDir } from '../test/helpers/app.js';
import { createTestDatabase } from '../test/helpers/database.js';
import { testServers } from '../test/helpers/servers.js';
import { buildForBench } from './build.js';
import { login, registerUsers } from './fixtures.js';
import { type Child, startChild, stopAll } from './processes.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '30' },
    instances: { type: 'string', default: '1,3' },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const counts = String(values.instances).split(',').map(Number);
const log = (message: string) => process.stderr.write(`${message}\n`);

const cleanups: (() => unknown)[] = [];
async function cleanUp(): Promise<void> {
  await stopAll();
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
}

interface Row {
  instances: number;
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
}

async function measure(ports: number[], tokens: string[], duration: number): Promise<Omit<Row, 'instances'>> {
  const share = (i: number) => Math.floor(connections / ports.length) + (i < connections % ports.length ? 1 : 0);
  const runs = await Promise.all(
    ports.map(
      (port, i) =>
        autocannon({
          url: `http://127.0.0.1:${port}`,
          connections: share(i),
          duration,
          // Each connection its own user's token, as many clients would send.
          requests: [
            {
              method: 'GET',
              path: '/users/me',
              setupRequest: (request, context: { token?: string }) => {
                context.token ??= tokens[Math.floor(Math.random() * tokens.length)];
                return { ...request, headers: { authorization: `Bearer ${context.token}` } };
              },
            },
          ],
        }) as Promise<autocannon.Result>,
    ),
  );
  const requests = runs.reduce((sum, run) => sum + run.requests.total, 0);
  return {
    requests,
    rps: runs.reduce((sum, run) => sum + run.requests.average, 0),
    // The slowest instance's percentiles: what a client of the round-robin sees at worst.
    p50: Math.max(...runs.map((run) => run.latency.p50)),
    p99: Math.max(...runs.map((run) => run.latency.p99)),
    non2xx: runs.reduce((sum, run) => sum + run.non2xx + run.errors, 0),
  };
}

async function main(): Promise<void> {
  const servers = await testServers();
  const database = await createTestDatabase(servers.databaseUrl);
  cleanups.push(() => database.drop());
  const keysDir = await makeKeysDir({ teardown: (fn) => cleanups.push(fn) });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'auth-bench-scale-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const prefix = `bench:scale:${randomBytes(6).toString('hex')}:`;
  cleanups.push(async () => {
    const redis = new Redis(servers.redisUrl);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });
  // One deployment: every instance shares issuer, keys, secrets and stores.
  const env = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_ENABLED: 'false',
    PRUNE_INTERVAL: '0',
    EMAIL_VERIFICATION: 'off',
    SMTP_URL: 'smtp://127.0.0.1:2525',
    ISSUER: 'http://127.0.0.1',
    DATABASE_URL: database.url,
    REDIS_URL: servers.redisUrl,
    REDIS_KEY_PREFIX: prefix,
    KEYS_DIR: keysDir,
    DATA_DIR: dataDir,
    SESSION_SECRET: randomBytes(32).toString('base64url'),
    DATA_ENCRYPTION_KEY: randomBytes(32).toString('base64url'),
  };
  log('transpiling src/ and bench/ for the server processes');
  const build = await buildForBench(path.resolve(import.meta.dirname, '..'));
  cleanups.push(() => build.remove());
  const start = () => startChild('service', build.file('bench/service.ts'), { env, cpu: undefined });

  const rows: Row[] = [];
  let tokens: string[] = [];
  for (const count of counts) {
    log(`starting ${count} instance(s)`);
    const instances: Child[] = [];
    for (let i = 0; i < count; i++) instances.push(await start());
    const ports = instances.map((instance) => instance.port as number);
    if (tokens.length === 0) {
      const origin = `http://127.0.0.1:${ports[0]}`;
      const users = await registerUsers(origin, 20);
      tokens = (await login(origin, users)).map((session) => session.accessToken);
    }
    // Warm-up (JIT, pools), not counted.
    await measure(ports, tokens, 3).catch(() => undefined);
    log(`measuring ${count} instance(s) for ${seconds} s`);
    rows.push({ instances: count, ...(await measure(ports, tokens, seconds)) });
    await Promise.all(instances.map((instance) => instance.stop()));
  }

  const base = rows[0]?.rps ?? 1;
  const table = [
    `GET /users/me, ${connections} connections, ${seconds} s per run, ${os.availableParallelism()} CPUs, load ${os
      .loadavg()
      .map((load) => load.toFixed(1))
      .join(' ')}`,
    '| instances | req/s | vs 1 | p50 ms | p99 ms | non-2xx/errors |',
    '|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (row) =>
        `| ${row.instances} | ${Math.round(row.rps)} | ${(row.rps / base).toFixed(2)}x | ${row.p50} | ${row.p99} | ${row.non2xx} |`,
    ),
  ];
  process.stdout.write(`${table.join('\n')}\n`);
}

try {
  await main();
} finally {
  await cleanUp();
}
