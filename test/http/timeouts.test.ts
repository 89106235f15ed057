// Slow clients are cut within a bound (issue item 12): a body that trickles in or never comes, and headers that never
// end, get a 408 in the contract's shape and a closed connection, while other connections keep being served.
import t, { type Test } from 'tap';
import { type App, buildApp, HTTP_TIMEOUTS } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { makeKeysDir } from '../helpers/app.js';
import { createTestDatabase } from '../helpers/database.js';
import { testServers } from '../helpers/servers.js';
import { assertContractResponse, exchange, listen, type RawResponse } from './raw-http.js';

// Small timeouts so the test runs in seconds; the defaults are checked below.
const REQUEST_TIMEOUT_MS = 3_000;
const HEADERS_TIMEOUT_MS = 2_000;
// Generous: the timeout, the check interval, and a loaded 2-core machine.
const BOUND_MS = 15_000;

async function buildSmallTimeoutApp(t: Test): Promise<App> {
  const servers = await testServers();
  const database = await createTestDatabase(servers.databaseUrl);
  t.teardown(() => database.drop());
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    EMAIL_VERIFICATION: 'off',
    DATABASE_URL: database.url,
    REDIS_URL: servers.redisUrl,
    REDIS_KEY_PREFIX: `test:timeouts:${process.pid}:`,
    KEYS_DIR: await makeKeysDir(t),
    ISSUER: 'http://auth.test',
    RATE_LIMIT_ENABLED: 'false',
    PRUNE_INTERVAL: '0',
  });
  const app = await buildApp(config, {
    logger: false,
    http: { requestTimeoutMs: REQUEST_TIMEOUT_MS, headersTimeoutMs: HEADERS_TIMEOUT_MS, checkIntervalMs: 250 },
  });
  t.teardown(() => app.close());
  return app;
}

const app = await buildSmallTimeoutApp(t);
const port = await listen(app);
const host = 'Host: 127.0.0.1\r\n';

function assert408(t: Test, response: RawResponse) {
  t.comment(`closed after ${response.elapsedMs} ms`);
  assertContractResponse(t, response, 408, 'REQUEST_TIMEOUT');
}

/** GET /health/live on fresh connections every 300 ms until `until` settles; their statuses. */
async function serveMeanwhile(until: Promise<unknown>): Promise<number[]> {
  let done = false;
  until.finally(() => {
    done = true;
  });
  const statuses: number[] = [];
  for (let i = 0; i < 100 && !done; i++) {
    const response = await exchange(port, {
      send: `GET /health/live HTTP/1.1\r\n${host}Connection: close\r\n\r\n`,
      boundMs: 5_000,
    });
    statuses.push(response.status);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  return statuses;
}

t.test('a body trickling in one byte every 2 s is cut with a 408; other connections are served', async (t) => {
  const slow = exchange(port, {
    send: `POST /auth/login HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{`,
    trickle: { pieces: Array.from({ length: 60 }, () => ' '), intervalMs: 2_000 },
    boundMs: BOUND_MS,
  });
  const meanwhile = await serveMeanwhile(slow);
  assert408(t, await slow);
  t.ok(meanwhile.length >= 2, `requests were served meanwhile (${meanwhile.length})`);
  t.same(
    meanwhile.filter((status) => status !== 200),
    [],
    'every request on another connection got 200',
  );
});

t.test('a body that never comes is cut with a 408', async (t) => {
  const response = await exchange(port, {
    send: `POST /auth/login HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n`,
    boundMs: BOUND_MS,
  });
  assert408(t, response);
});

t.test('headers that never end are cut with a 408', async (t) => {
  const response = await exchange(port, {
    send: `GET /health/live HTTP/1.1\r\n${host}`,
    trickle: { pieces: Array.from({ length: 60 }, (_, i) => `X-Slow-${i}: a\r\n`), intervalMs: 500 },
    boundMs: BOUND_MS,
  });
  assert408(t, response);
});

t.test('the defaults bound every phase, and keep-alive outlives a 60 s load-balancer idle timeout', async (t) => {
  t.ok(HTTP_TIMEOUTS.requestTimeoutMs > 0 && HTTP_TIMEOUTS.requestTimeoutMs <= 60_000, 'request timeout set');
  t.ok(HTTP_TIMEOUTS.headersTimeoutMs <= HTTP_TIMEOUTS.requestTimeoutMs, 'headers within the request timeout');
  t.ok(HTTP_TIMEOUTS.keepAliveTimeoutMs > 60_000, 'keep-alive longer than 60 s');
  t.ok(HTTP_TIMEOUTS.connectionTimeoutMs > HTTP_TIMEOUTS.keepAliveTimeoutMs, 'idle bound beyond keep-alive');
  t.equal(app.server.requestTimeout, REQUEST_TIMEOUT_MS, 'BuildOptions.http reaches the server');
  t.equal(app.server.headersTimeout, HEADERS_TIMEOUT_MS);
  t.equal(app.server.keepAliveTimeout, HTTP_TIMEOUTS.keepAliveTimeoutMs, 'unset options keep their default');
});
