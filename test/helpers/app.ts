// Builds the real app for a test file: its own database, Redis key prefix and key folder.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { type App, buildApp } from '../../src/app.js';
import type { Clock } from '../../src/clock.js';
import { type Config, loadConfig } from '../../src/config.js';
import { generatePrivateKeyPem } from '../../src/keys/key-ring.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { type TestServers, testServers } from './servers.js';

/** The subset of a tap Test the helpers use. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface TestApp {
  app: App;
  config: Config;
  /** Redis client on the same server, without the app's prefix (use `redisKey` to address the app's keys). */
  redis: Redis;
  redisKey(key: string): string;
  databaseUrl: string;
  /** DATA_DIR of this app (its outbox is `<dataDir>/outbox`). */
  dataDir: string;
}

let sharedKeyPem: string | undefined;

/** A key folder holding one RSA key, generated once per process (key generation is slow). */
export async function makeKeysDir(t: Teardown, pem?: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-keys-'));
  sharedKeyPem ??= generatePrivateKeyPem('RS256');
  await writeFile(path.join(dir, 'test.pem'), pem ?? sharedKeyPem, { mode: 0o600 });
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface TestAppOptions {
  env?: Record<string, string>;
  clock?: Clock;
  /** Reuse a database (e.g. to restart the app on the same data); by default each call makes a new one. */
  databaseUrl?: string;
  keysDir?: string;
  redisKeyPrefix?: string;
  /** Waits between mail delivery attempts; by default short, so retry tests run fast. */
  mailRetryDelaysMs?: readonly number[];
}

export async function buildTestApp(t: Teardown, options: TestAppOptions = {}): Promise<TestApp> {
  const servers = await testServers();
  let databaseUrl = options.databaseUrl;
  if (!databaseUrl) {
    const database = await createTestDatabase(servers.databaseUrl);
    t.teardown(() => database.drop());
    databaseUrl = database.url;
  }
  const redisKeyPrefix = options.redisKeyPrefix ?? `test:${randomBytes(6).toString('hex')}:`;
  // Without SMTP_URL, mail goes to DATA_DIR/outbox: a folder of this test's own, never the checkout's ./data.
  const dataDir = await mkdtemp(path.join(tmpdir(), 'auth-data-'));
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: databaseUrl,
    REDIS_URL: servers.redisUrl,
    REDIS_KEY_PREFIX: redisKeyPrefix,
    KEYS_DIR: options.keysDir ?? (await makeKeysDir(t)),
    ISSUER: 'http://auth.test',
    RATE_LIMIT_ENABLED: 'false',
    PRUNE_INTERVAL: '0',
    DATA_DIR: dataDir,
    ...options.env,
  });
  const app = await buildApp(config, {
    clock: options.clock,
    logger: false,
    mailRetryDelaysMs: options.mailRetryDelaysMs ?? [50, 100],
  });
  const redis = new Redis(servers.redisUrl, { lazyConnect: true });
  await redis.connect();
  t.teardown(async () => {
    // Closing waits for deferred account work and its mail, which may still write to the outbox.
    await app.close();
    await rm(dataDir, { recursive: true, force: true });
    const keys = await redis.keys(`${redisKeyPrefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });
  return { app, config, redis, redisKey: (key) => `${redisKeyPrefix}${key}`, databaseUrl, dataDir };
}

export interface ProcessBackends {
  servers: TestServers;
  database: TestDatabase;
  /** A Redis key prefix of the test's own; its keys are deleted at teardown. */
  redisKeyPrefix: string;
}

/** A database and a Redis key prefix of a test's own, for server processes it starts; both removed at teardown. */
export async function processBackends(t: Teardown, label: string): Promise<ProcessBackends> {
  const servers = await testServers();
  const database = await createTestDatabase(servers.databaseUrl);
  t.teardown(() => database.drop());
  const redisKeyPrefix = `test:${label}:${randomBytes(6).toString('hex')}:`;
  t.teardown(async () => {
    const redis = new Redis(servers.redisUrl);
    const keys = await redis.keys(`${redisKeyPrefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });
  return { servers, database, redisKeyPrefix };
}
