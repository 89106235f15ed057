import t from 'tap';
import type { App } from '../../src/app.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase } from '../helpers/database.js';
import { startProxy } from '../helpers/proxy.js';
import { testServers } from '../helpers/servers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Ready {
  status: 'ok' | 'unavailable';
  checks: { postgres: 'ok' | 'down'; redis: 'ok' | 'down' };
}

async function ready(app: App): Promise<{ statusCode: number; body: Ready }> {
  const response = await app.inject({ method: 'GET', url: '/health/ready' });
  return { statusCode: response.statusCode, body: response.json() as Ready };
}

/** Polls readiness until it answers `statusCode`, for at most `timeoutMs`; returns the last answer. */
async function readyUntil(app: App, statusCode: number, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await ready(app);
    if (answer.statusCode === statusCode || Date.now() > deadline) return answer;
    await sleep(100);
  }
}

t.test('live and ready on healthy dependencies', async (t) => {
  const { app } = await buildTestApp(t);

  const live = await app.inject({ method: 'GET', url: '/health/live' });
  t.equal(live.statusCode, 200);
  t.same(live.json(), { status: 'ok' });

  const response = await app.inject({ method: 'GET', url: '/health/ready' });
  t.equal(response.statusCode, 200);
  t.same(response.json(), { status: 'ok', checks: { postgres: 'ok', redis: 'ok' } });
  t.equal(response.headers['cache-control'], 'no-store', 'a load balancer never sees a cached answer');

  t.test('/docs/json is an OpenAPI 3 document of the routes', async (t) => {
    const docs = await app.inject({ method: 'GET', url: '/docs/json' });
    t.equal(docs.statusCode, 200);
    const document = docs.json() as {
      openapi: string;
      paths: Record<string, unknown>;
      components: { securitySchemes: Record<string, Record<string, unknown>> };
    };
    t.match(document.openapi, /^3\./);
    t.ok(document.paths['/health/ready'], 'documents /health/ready');
    t.ok(document.paths['/health/live'], 'documents /health/live');
    t.ok(document.paths['/.well-known/jwks.json'], 'documents /.well-known/jwks.json');
    t.match(document.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer' });
    t.match(document.components.securitySchemes.cookieAuth, {
      type: 'apiKey',
      in: 'cookie',
      name: '__Host-access_token',
    });
  });

  t.test('/docs serves the Swagger UI page', async (t) => {
    let docs = await app.inject({ method: 'GET', url: '/docs' });
    if (docs.statusCode >= 300 && docs.statusCode < 400 && docs.headers.location) {
      docs = await app.inject({ method: 'GET', url: new URL(docs.headers.location, 'http://x/docs/').pathname });
    }
    t.equal(docs.statusCode, 200);
    t.match(docs.headers['content-type'], /^text\/html/);
    t.match(docs.body, /swagger/i);
  });
});

t.test('Postgres down: ready is 503 naming postgres, live stays 200, and it recovers', async (t) => {
  const servers = await testServers();
  const database = await createTestDatabase(servers.databaseUrl);
  t.teardown(() => database.drop());
  const target = new URL(servers.databaseUrl);
  const proxy = await startProxy(target.hostname, Number(target.port || 5432));
  t.teardown(() => proxy.close());
  const { app } = await buildTestApp(t, { databaseUrl: proxy.url(database.url) });

  t.equal((await ready(app)).statusCode, 200, 'ready through the proxy');

  await proxy.cut();
  const down = await ready(app);
  t.equal(down.statusCode, 503);
  t.same(down.body, { status: 'unavailable', checks: { postgres: 'down', redis: 'ok' } });
  const live = await app.inject({ method: 'GET', url: '/health/live' });
  t.equal(live.statusCode, 200, 'live stays 200 while postgres is down');

  await proxy.restore();
  const back = await readyUntil(app, 200);
  t.equal(back.statusCode, 200, 'ready again once postgres answers');
  t.same(back.body, { status: 'ok', checks: { postgres: 'ok', redis: 'ok' } });
});

t.test('Redis down: ready is 503 naming redis, live stays 200, and it recovers', async (t) => {
  const servers = await testServers();
  const target = new URL(servers.redisUrl);
  const proxy = await startProxy(target.hostname, Number(target.port || 6379));
  t.teardown(() => proxy.close());
  const { app } = await buildTestApp(t, { env: { REDIS_URL: proxy.url(servers.redisUrl) } });

  t.equal((await ready(app)).statusCode, 200, 'ready through the proxy');

  await proxy.cut();
  const down = await readyUntil(app, 503, 5_000);
  t.equal(down.statusCode, 503);
  t.same(down.body, { status: 'unavailable', checks: { postgres: 'ok', redis: 'down' } });
  const live = await app.inject({ method: 'GET', url: '/health/live' });
  t.equal(live.statusCode, 200, 'live stays 200 while redis is down');

  await proxy.restore();
  const back = await readyUntil(app, 200);
  t.equal(back.statusCode, 200, 'ready again once redis answers');
  t.same(back.body, { status: 'ok', checks: { postgres: 'ok', redis: 'ok' } });
});
