// Losing Postgres mid-request never kills the process: backends terminated, or connections reset by a cut proxy,
// while logins and refreshes are in flight; the service answers 503 meanwhile and serves again afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import t, { type Test } from 'tap';
import { makeKeysDir } from '../helpers/app.js';
import { createTestDatabase } from '../helpers/database.js';
import { startProxy } from '../helpers/proxy.js';
import { type HttpResult, request, type ServerProcess, startServerProcess } from '../helpers/server-process.js';
import { testServers } from '../helpers/servers.js';

const PASSWORD = 'correct horse battery staple';
const ROUNDS = 10;
const servers = await testServers();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Service {
  server: ServerProcess;
  databaseName: string;
}

async function startService(t: Test, databaseUrl: (url: string) => string = (url) => url): Promise<Service> {
  const database = await createTestDatabase(servers.databaseUrl);
  t.teardown(() => database.drop());
  const redisKeyPrefix = `test:connloss:${randomBytes(6).toString('hex')}:`;
  t.teardown(async () => {
    const { Redis } = await import('ioredis');
    const redis = new Redis(servers.redisUrl);
    const keys = await redis.keys(`${redisKeyPrefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });
  const server = await startServerProcess(t, {
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    DATABASE_URL: databaseUrl(database.url),
    REDIS_URL: servers.redisUrl,
    REDIS_KEY_PREFIX: redisKeyPrefix,
    KEYS_DIR: await makeKeysDir(t),
    RATE_LIMIT_ENABLED: 'false',
    PRUNE_INTERVAL: '0',
  });
  return { server, databaseName: new URL(database.url).pathname.slice(1) };
}

/** Ends every backend of the database but our own, as an operator (or a failover) would. */
async function terminateBackends(databaseName: string): Promise<void> {
  const admin = new pg.Client({ connectionString: servers.databaseUrl });
  await admin.connect();
  try {
    await admin.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [databaseName],
    );
  } finally {
    await admin.end();
  }
}

/** A round of concurrent traffic: logins (right and wrong password) and refreshes of earlier refresh tokens. */
function traffic(port: number, email: string, refreshTokens: string[]): Promise<PromiseSettledResult<HttpResult>[]> {
  const calls: Promise<HttpResult>[] = [];
  for (let i = 0; i < 4; i++) calls.push(request(port, 'POST', '/auth/login', { email, password: PASSWORD }));
  calls.push(request(port, 'POST', '/auth/login', { email, password: 'not the password at all' }));
  for (const refreshToken of refreshTokens.splice(0, 3)) {
    calls.push(request(port, 'POST', '/auth/refresh', { refreshToken }));
  }
  return Promise.allSettled(calls);
}

/** Every answer is 200, 401 or 503 SERVICE_UNAVAILABLE in the contract's shape; never a dropped connection. */
function checkAnswers(t: Test, round: number, results: PromiseSettledResult<HttpResult>[], refreshTokens: string[]) {
  const statuses = new Set<number>();
  for (const result of results) {
    if (result.status === 'rejected') {
      t.fail(`round ${round}: a request failed at the socket level: ${(result.reason as Error).message}`);
      continue;
    }
    const { statusCode, body } = result.value;
    statuses.add(statusCode);
    if (![200, 401, 503].includes(statusCode)) {
      t.fail(`round ${round}: unexpected status ${statusCode}: ${body}`);
      continue;
    }
    const json = JSON.parse(body) as Record<string, unknown>;
    if (statusCode === 200) {
      if (typeof json.refreshToken === 'string') refreshTokens.push(json.refreshToken);
      continue;
    }
    const shaped =
      json.statusCode === statusCode &&
      typeof json.code === 'string' &&
      typeof json.error === 'string' &&
      typeof json.message === 'string';
    if (!shaped) t.fail(`round ${round}: ${statusCode} not in the error shape: ${body}`);
    if (statusCode === 503 && json.code !== 'SERVICE_UNAVAILABLE') t.fail(`round ${round}: 503 code ${json.code}`);
  }
  return statuses;
}

async function register(port: number): Promise<string> {
  const email = `connloss-${randomBytes(5).toString('hex')}@example.com`;
  const response = await request(port, 'POST', '/auth/register', { email, password: PASSWORD });
  if (response.statusCode !== 201) throw new Error(`register failed: ${response.statusCode} ${response.body}`);
  return email;
}

async function assertRecovers(t: Test, server: ServerProcess, email: string): Promise<void> {
  // An idle connection cut last may still be in the pool until its socket's error is read: its one request gets a
  // 503 (fail closed), and the pool replaces it. Recovery is the next answers being 200, within a bound.
  const deadline = Date.now() + 30_000;
  let login = await request(server.port, 'POST', '/auth/login', { email, password: PASSWORD });
  while (login.statusCode === 503 && Date.now() < deadline) {
    await sleep(200);
    login = await request(server.port, 'POST', '/auth/login', { email, password: PASSWORD });
  }
  t.equal(login.statusCode, 200, 'a login after the cuts answers 200', { body: login.body.slice(0, 500) });
  t.ok(server.alive(), 'the process is still running at the end');
}

t.test('terminating the database backends mid-transaction never crashes the process', async (t) => {
  const { server, databaseName } = await startService(t);
  const email = await register(server.port);
  const refreshTokens: string[] = [];
  const seen = new Set<number>();
  for (let round = 1; round <= ROUNDS; round++) {
    const inFlight = traffic(server.port, email, refreshTokens);
    // Several cuts spread over the round, so some land mid-query and some between a transaction's queries.
    for (const delay of [5, 20, 40, 80]) {
      await sleep(delay);
      await terminateBackends(databaseName);
    }
    for (const status of checkAnswers(t, round, await inFlight, refreshTokens)) seen.add(status);
    if (!server.alive()) {
      t.fail(`round ${round}: the process exited:\n${server.output().slice(-3000)}`);
      return;
    }
  }
  t.pass(`alive after ${ROUNDS} rounds (statuses seen: ${[...seen].sort().join(', ')})`);
  t.notMatch(server.output(), /uncaught error/, 'no uncaught error was logged');
  t.match(server.output(), /postgres connection lost/, 'the lost connections were logged');
  t.notMatch(server.output(), /secretKey/, "without dumping the client's backend cancel key");
  await assertRecovers(t, server, email);
});

t.test('connections reset by a cut proxy mid-transaction never crash the process', async (t) => {
  const [host, port] = [new URL(servers.databaseUrl).hostname, Number(new URL(servers.databaseUrl).port || 5432)];
  const proxy = await startProxy(host, port);
  t.teardown(() => proxy.close());
  const { server } = await startService(t, (url) => proxy.url(url));
  const email = await register(server.port);
  const refreshTokens: string[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const inFlight = traffic(server.port, email, refreshTokens);
    await sleep(10 + 15 * (round % 4));
    await proxy.cut();
    await sleep(30);
    await proxy.restore();
    checkAnswers(t, round, await inFlight, refreshTokens);
    if (!server.alive()) {
      t.fail(`round ${round}: the process exited:\n${server.output().slice(-3000)}`);
      return;
    }
  }
  t.pass(`alive after ${ROUNDS} rounds of cuts`);
  t.notMatch(server.output(), /uncaught error/, 'no uncaught error was logged');
  await assertRecovers(t, server, email);
});
