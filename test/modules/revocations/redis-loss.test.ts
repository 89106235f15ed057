// The deny-list survives losing Redis: a private, non-persistent redis-server is killed and started again empty,
// and every revoked token (logout, role change, revoked session) stays rejected (503 while the deny-list is
// rebuilt from Postgres, then 401 TOKEN_REVOKED), never 200. Also: Redis writes come after the Postgres commit, a
// write that fails after it is not lost, and a Redis that may evict keys is refused in production.
import { Writable } from 'node:stream';
import { eq } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { type App, buildApp } from '../../../src/app.js';
import { loadConfig } from '../../../src/config.js';
import { revocations } from '../../../src/db/schema.js';
import { loginAdmin, putRoles } from '../../helpers/admin.js';
import { buildTestApp, makeKeysDir } from '../../helpers/app.js';
import { startProxy } from '../../helpers/proxy.js';
import { startRedisServer } from '../../helpers/redis-server.js';
import { testServers } from '../../helpers/servers.js';
import { assertError, bearer, codeOf, me, refresh, registerAndLogin, sessionRow } from '../../helpers/session-flow.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls GET /users/me with `token` until it answers something other than 503 (bounded: 15 s). Returns every
 * status seen, so a test can assert that 200 never appeared, and the last response.
 */
async function settle(app: App, token: string) {
  const seen: string[] = [];
  const deadline = Date.now() + 15_000;
  for (;;) {
    const response = await me(app, token);
    seen.push(`${response.statusCode} ${codeOf(response) ?? ''}`.trim());
    if (response.statusCode !== 503 || Date.now() > deadline) return { seen, last: response };
    await sleep(100);
  }
}

function assertNeverAccepted(t: Test, seen: string[], label: string) {
  t.notOk(
    seen.some((status) => status.startsWith('200')),
    `${label}: never 200 (${[...new Set(seen)].join(', ')})`,
  );
}

t.test('a Redis restarted empty: logged-out, demoted and revoked-session tokens stay revoked', async (t) => {
  const redis = await startRedisServer(t);
  const { app } = await buildTestApp(t, { env: { REDIS_URL: redis.url } });
  const admin = await loginAdmin(app);

  const loggedOut = await registerAndLogin(app);
  t.equal(
    (await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(loggedOut.accessToken) })).statusCode,
    204,
  );
  const demoted = await registerAndLogin(app);
  t.equal((await putRoles(app, admin.accessToken, demoted.account.id, { roles: ['user', 'admin'] })).statusCode, 200);
  const revokedSession = await registerAndLogin(app);
  const bystander = await registerAndLogin(app);
  const revoke = await app.inject({
    method: 'DELETE',
    url: `/auth/sessions/${revokedSession.sessionId}`,
    headers: bearer(revokedSession.accessToken),
  });
  t.equal(revoke.statusCode, 204, 'session revoked');

  for (const [label, token] of [
    ['logged out', loggedOut.accessToken],
    ['demoted', demoted.accessToken],
    ['revoked session', revokedSession.accessToken],
  ] as const) {
    assertError(t, await me(app, token), 401, 'TOKEN_REVOKED', `${label}, before the restart`);
  }

  await redis.kill();
  await redis.start();

  for (const [label, token] of [
    ['logged out', loggedOut.accessToken],
    ['demoted', demoted.accessToken],
    ['revoked session', revokedSession.accessToken],
  ] as const) {
    const { seen, last } = await settle(app, token);
    assertNeverAccepted(t, seen, label);
    assertError(t, last, 401, 'TOKEN_REVOKED', `${label}, after the restart`);
  }
  const { seen, last } = await settle(app, bystander.accessToken);
  t.equal(last.statusCode, 200, `an unrevoked token is accepted once rebuilt (${seen.join(', ')})`);

  // A second loss, and the same again: the rebuild is repeatable.
  await redis.kill();
  await redis.start();
  const again = await settle(app, loggedOut.accessToken);
  assertNeverAccepted(t, again.seen, 'logged out, second restart');
  assertError(t, again.last, 401, 'TOKEN_REVOKED', 'logged out, second restart');
});

t.test(
  'a Redis write that fails after the commit: Postgres keeps the revocation, the token never comes back',
  async (t) => {
    const redis = await startRedisServer(t);
    const proxy = await startProxy('127.0.0.1', redis.port);
    t.teardown(() => proxy.close());
    const { app } = await buildTestApp(t, { env: { REDIS_URL: proxy.url(redis.url) } });
    const session = await registerAndLogin(app);
    t.equal((await me(app, session.accessToken)).statusCode, 200, 'accepted through the proxy');

    await proxy.cut();
    let out: Awaited<ReturnType<App['inject']>> | undefined;
    try {
      // Logout by access token verifies the signature only, so it reaches the transaction while Redis is unreachable.
      out = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(session.accessToken) });
    } finally {
      await proxy.restore();
    }
    if (!out) throw new Error('logout did not answer');
    assertError(t, out, 503, 'SERVICE_UNAVAILABLE', 'the client is told to retry');
    t.ok((await sessionRow(app, session.sessionId))?.revokedAt, 'the session is revoked in Postgres');
    const rows = await app.db.select().from(revocations).where(eq(revocations.value, session.sessionId));
    t.equal(rows.length, 1, 'and its revocation row committed');
    assertError(t, await refresh(app, session.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'the refresh token is dead');

    const { seen, last } = await settle(app, session.accessToken);
    assertNeverAccepted(t, seen, 'after Redis is back');
    assertError(t, last, 401, 'TOKEN_REVOKED', 'after Redis is back');
    const retry = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(session.accessToken) });
    t.equal(retry.statusCode, 204, 'the retried logout succeeds');
  },
);

async function bootWith(t: Test, redisUrl: string, nodeEnv: 'production' | 'test') {
  const { databaseUrl } = await testServers();
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  const { createTestDatabase } = await import('../../helpers/database.js');
  const database = await createTestDatabase(databaseUrl);
  t.teardown(() => database.drop());
  const config = loadConfig({
    NODE_ENV: nodeEnv,
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: 'test:evict:',
    KEYS_DIR: await makeKeysDir(t),
    ISSUER: 'http://auth.test',
    PRUNE_INTERVAL: '0',
    SESSION_SECRET: 'x'.repeat(32),
    DATA_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64url'),
    // Required in production; never dialled here.
    SMTP_URL: 'smtp://127.0.0.1:9',
  });
  const booted = buildApp(config, { logger: { level: 'warn', stream } });
  return { booted, lines };
}

t.test('maxmemory-policy allkeys-lru: refused in production, a loud warning otherwise', async (t) => {
  const redis = await startRedisServer(t, ['--maxmemory-policy', 'allkeys-lru']);
  const production = await bootWith(t, redis.url, 'production');
  await t.rejects(production.booted, /maxmemory-policy/, 'production refuses to boot');

  const test = await bootWith(t, redis.url, 'test');
  const app = await test.booted;
  t.teardown(() => app.close());
  t.ok(
    test.lines.some((line) => /maxmemory-policy/.test(line) && /allkeys-lru/.test(line) && /"level":40/.test(line)),
    'outside production: a warning naming the policy',
  );

  const safe = await startRedisServer(t, ['--maxmemory-policy', 'noeviction']);
  const ok = await bootWith(t, safe.url, 'production');
  const okApp = await ok.booted;
  t.teardown(() => okApp.close());
  t.notOk(
    ok.lines.some((line) => /maxmemory-policy/.test(line)),
    'noeviction: no warning',
  );
});
