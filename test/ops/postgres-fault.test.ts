// A Postgres outage of several seconds, recovered without a restart. test/db/connection-loss.test.ts covers cuts of a
// few milliseconds under traffic (no crash); this one holds the cut: every route that needs Postgres answers 503
// SERVICE_UNAVAILABLE (fail closed, also for a valid access token), /health/ready 503 naming postgres, /health/live
// 200, nothing unhandled in the output; and once the proxy is back, the same process serves again.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { makeKeysDir, processBackends } from '../helpers/app.js';
import { startProxy } from '../helpers/proxy.js';
import { type HttpResult, request, startServerProcess } from '../helpers/server-process.js';

const { servers, database, redisKeyPrefix } = await processBackends(t, 'pgfault');
const upstream = new URL(servers.databaseUrl);
const proxy = await startProxy(upstream.hostname, Number(upstream.port || 5432));
t.teardown(() => proxy.close());
const server = await startServerProcess(t, {
  NODE_ENV: 'test',
  LOG_LEVEL: 'warn',
  DATABASE_URL: proxy.url(database.url),
  REDIS_URL: servers.redisUrl,
  REDIS_KEY_PREFIX: redisKeyPrefix,
  KEYS_DIR: await makeKeysDir(t),
  RATE_LIMIT_ENABLED: 'false',
  PRUNE_INTERVAL: '0',
});
const PASSWORD = 'correct horse battery staple';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const call = (method: string, urlPath: string, options: { body?: unknown; token?: string } = {}) =>
  request(
    server.port,
    method,
    urlPath,
    options.body,
    options.token ? { authorization: `Bearer ${options.token}` } : {},
  );
const parse = (result: HttpResult) => JSON.parse(result.body) as Record<string, unknown>;

t.test('Postgres cut for seconds: 503 meanwhile, served again after, same process', async (t) => {
  const email = `pgfault-${randomBytes(5).toString('hex')}@example.com`;
  t.equal((await call('POST', '/auth/register', { body: { email, password: PASSWORD } })).statusCode, 201);
  const login = await call('POST', '/auth/login', { body: { email, password: PASSWORD } });
  const { accessToken, refreshToken } = parse(login) as { accessToken: string; refreshToken: string };
  t.equal((await call('GET', '/users/me', { token: accessToken })).statusCode, 200, 'served before the cut');

  await proxy.cut();
  // Past the pool's connect timeout (2 s), so idle connections are gone and new ones are refused.
  const until = Date.now() + 5_000;
  const seen = new Map<string, number>();
  let round = 0;
  while (Date.now() < until) {
    round++;
    const answers = await Promise.all([
      call('POST', '/auth/login', { body: { email, password: PASSWORD } }),
      call('POST', '/auth/register', { body: { email: `x${round}-${email}`, password: PASSWORD } }),
      call('POST', '/auth/refresh', { body: { refreshToken } }),
      call('GET', '/users/me', { token: accessToken }),
    ]);
    for (const answer of answers) {
      const key = `${answer.statusCode} ${parse(answer).code ?? ''}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
    await sleep(250);
  }
  t.strictSame([...seen.keys()], ['503 SERVICE_UNAVAILABLE'], `only 503 SERVICE_UNAVAILABLE (${round} rounds)`);
  const ready = await call('GET', '/health/ready');
  t.equal(ready.statusCode, 503, '/health/ready 503');
  t.match(parse(ready), { status: 'unavailable', checks: { postgres: 'down', redis: 'ok' } }, 'naming postgres');
  t.equal((await call('GET', '/health/live')).statusCode, 200, '/health/live still 200');

  await proxy.restore();
  const deadline = Date.now() + 15_000;
  let back: HttpResult | undefined;
  while (Date.now() < deadline) {
    back = await call('GET', '/health/ready');
    if (back.statusCode === 200) break;
    await sleep(200);
  }
  t.equal(back?.statusCode, 200, 'ready again without a restart');
  t.equal((await call('GET', '/users/me', { token: accessToken })).statusCode, 200, 'the old token works again');
  const refreshed = await call('POST', '/auth/refresh', { body: { refreshToken } });
  t.equal(refreshed.statusCode, 200, 'the refresh token was not consumed by a failed attempt');
  const again = await call('POST', '/auth/login', { body: { email, password: PASSWORD } });
  t.equal(again.statusCode, 200, 'logins work again');

  t.ok(server.alive(), 'the process kept running');
  const output = server.output();
  t.notMatch(output, /unhandled|uncaught/i, 'no unhandled rejection or uncaught error');
  t.notMatch(output, /"level":60/, 'nothing fatal');
  t.match(output, /postgres connection lost|not ready/, 'the outage was logged');
});
