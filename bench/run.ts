// `npm run bench`: throughput, latency and memory of the hot paths, measured with autocannon over loopback against
// the real app on Postgres and Redis (TEST_DATABASE_URL / TEST_REDIS_URL, else the local servers). Bounded: each
// scenario runs BENCH_SECONDS (default 5) with BENCH_CONNECTIONS (default 20) connections, then stops.
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { makeKeysDir } from '../test/helpers/app.js';
import { createTestDatabase } from '../test/helpers/database.js';
import { testServers } from '../test/helpers/servers.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 20);

const cleanups: (() => unknown)[] = [];
const teardown = { teardown: (fn: () => unknown) => cleanups.push(fn) };

const servers = await testServers();
const database = await createTestDatabase(servers.databaseUrl);
cleanups.push(() => database.drop());
const config = loadConfig({
  NODE_ENV: 'test',
  LOG_LEVEL: 'warn',
  DATABASE_URL: database.url,
  REDIS_URL: servers.redisUrl,
  REDIS_KEY_PREFIX: `bench:${Date.now()}:`,
  KEYS_DIR: await makeKeysDir(teardown),
  RATE_LIMIT_ENABLED: 'false',
  PRUNE_INTERVAL: '0',
  // The benchmark measures the token paths: no verification mail (it would go to ./data/outbox).
  EMAIL_VERIFICATION: 'off',
});
const app = await buildApp(config, { logger: false });
const address = await app.listen({ port: 0, host: '127.0.0.1' });
const bootMemory = process.memoryUsage();

const password = 'correct horse battery staple';
const email = 'bench@example.com';
await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password } });
const login = (await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })).json();
const bearer = { authorization: `Bearer ${login.accessToken}` };

interface Row {
  scenario: string;
  'req/s': number;
  'p50 ms': number;
  'p99 ms': number;
  non2xx: number;
}
const rows: Row[] = [];

async function scenario(name: string, path: string, options: Partial<autocannon.Options> = {}): Promise<void> {
  // The load generator runs in a worker thread, so it does not share the server's event loop.
  const result = await autocannon({ url: `${address}${path}`, connections, duration: seconds, workers: 1, ...options });
  rows.push({
    scenario: name,
    'req/s': Math.round(result.requests.average),
    'p50 ms': result.latency.p50,
    'p99 ms': result.latency.p99,
    non2xx: result.non2xx,
  });
}

// In-process verifier cost: signature + claims, then the deny-list round trip, without HTTP.
const verifyRounds = 20_000;
let started = performance.now();
for (let i = 0; i < verifyRounds; i++) await app.accessTokens.verify(login.accessToken);
const verifyMicros = ((performance.now() - started) * 1000) / verifyRounds;
started = performance.now();
for (let i = 0; i < 2_000; i++) {
  const token = app.accessTokens.issue({
    userId: login.user.id,
    sessionId: login.user.id,
    roles: ['user'],
    amr: ['pwd'],
    tokenVersion: 0,
  });
  await app.accessTokens.verify(token.token);
}
const issueVerifyMicros = ((performance.now() - started) * 1000) / 2_000;

await scenario('GET /health/live', '/health/live');
await scenario('GET /.well-known/jwks.json', '/.well-known/jwks.json');
await scenario('GET /users/me (verify + deny-list + user row)', '/users/me', { headers: bearer });
await scenario('GET /auth/sessions (verify + deny-list + list)', '/auth/sessions', { headers: bearer });
// argon2id at 19 MiB, t=2 is deliberately slow: this is the login capacity of one instance.
await scenario('POST /auth/login (argon2id)', '/auth/login', {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ email, password }),
});
global.gc?.();
const memory = process.memoryUsage();

await app.close();
for (const cleanup of cleanups.reverse()) await cleanup();

console.log(`\nautocannon: ${connections} connections, ${seconds} s per scenario, loopback, Node ${process.version}`);
console.table(rows);
console.log(`verify (cached signature) in-process: ${verifyMicros.toFixed(1)} µs/token`);
console.log(`issue + verify (fresh token, RS256 sign and verify): ${issueVerifyMicros.toFixed(1)} µs/token`);
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
console.log(`memory after boot: rss ${mib(bootMemory.rss)}, heap used ${mib(bootMemory.heapUsed)}`);
// Includes argon2id's 19 MiB per concurrent hash (4 libuv threads) and the load generator's worker.
console.log(`memory after the run: rss ${mib(memory.rss)}, heap used ${mib(memory.heapUsed)}`);
