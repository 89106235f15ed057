// Ending sessions while Redis is unreachable (a cuttable TCP proxy, never a mock): 503 SERVICE_UNAVAILABLE, and the
// Postgres transaction rolls back, so nothing is half-written; once Redis answers again, the same requests work.
import { eq } from 'drizzle-orm';
import t from 'tap';
import type { App } from '../../../src/app.js';
import { refreshTokens, revocations } from '../../../src/db/schema.js';
import { buildTestApp } from '../../helpers/app.js';
import { startProxy } from '../../helpers/proxy.js';
import { testServers } from '../../helpers/servers.js';
import {
  type Asserts,
  assertError,
  bearer,
  eventsOf,
  type LoggedIn,
  me,
  refresh,
  registerAndLogin,
  sessionRow,
} from '../../helpers/session-flow.js';

const servers = await testServers();
const target = new URL(servers.redisUrl);
const proxy = await startProxy(target.hostname, Number(target.port || 6379));
const { app } = await buildTestApp(t, { env: { REDIS_URL: proxy.url(servers.redisUrl), REFRESH_REUSE_INTERVAL: '0' } });
t.teardown(() => proxy.close());

async function waitUntilReady(app: App): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if ((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('Redis did not come back through the proxy');
}

/** Nothing of a logout was written: the session, its tokens, events and the durable deny-list are as before. */
async function assertUntouched(t: Asserts, session: LoggedIn, label: string) {
  t.equal((await sessionRow(app, session.sessionId))?.revokedAt, null, `${label}: session still live in Postgres`);
  const tokens = await app.db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, session.sessionId));
  t.ok(
    tokens.every((token) => token.revokedAt === null),
    `${label}: refresh tokens not revoked`,
  );
  t.equal((await eventsOf(app, session.account.id, 'logged_out')).length, 0, `${label}: no logged_out event`);
  const durable = await app.db.select().from(revocations).where(eq(revocations.value, session.sessionId));
  t.equal(durable.length, 0, `${label}: no revocation row`);
}

t.test('logout while Redis is down: 503, nothing half-written; after Redis returns, logout works', async (t) => {
  await waitUntilReady(app);
  const byAccess = await registerAndLogin(app);
  const byRefresh = await registerAndLogin(app);

  await proxy.cut();
  try {
    const first = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(byAccess.accessToken) });
    assertError(t, first, 503, 'SERVICE_UNAVAILABLE', 'by access token');
    t.notOk(first.headers['set-cookie'], 'cookies are not cleared on failure');
    const second = await app.inject({
      method: 'POST',
      url: '/auth/logout',
      payload: { refreshToken: byRefresh.refreshToken },
    });
    assertError(t, second, 503, 'SERVICE_UNAVAILABLE', 'by refresh token');
    t.notMatch(second.body, /redis|ECONN|stream/i, 'no internals in the body');
    assertError(t, await me(app, byAccess.accessToken), 503, 'SERVICE_UNAVAILABLE', 'verification fails closed');
    assertError(
      t,
      await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(byAccess.accessToken) }),
      503,
      'SERVICE_UNAVAILABLE',
      'logout-all',
    );
  } finally {
    await proxy.restore();
  }
  await assertUntouched(t, byAccess, 'by access token');
  await assertUntouched(t, byRefresh, 'by refresh token');

  await waitUntilReady(app);
  t.equal((await me(app, byAccess.accessToken)).statusCode, 200, 'the token is still accepted: nothing was revoked');
  const retry = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(byAccess.accessToken) });
  t.equal(retry.statusCode, 204, 'logout by access token works again');
  assertError(t, await me(app, byAccess.accessToken), 401, 'TOKEN_REVOKED');
  const retry2 = await app.inject({
    method: 'POST',
    url: '/auth/logout',
    payload: { refreshToken: byRefresh.refreshToken },
  });
  t.equal(retry2.statusCode, 204, 'logout by refresh token works again');
  assertError(t, await me(app, byRefresh.accessToken), 401, 'TOKEN_REVOKED');
  assertError(t, await refresh(app, byRefresh.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
});

t.test(
  'refresh reuse while Redis is down: 503 and the revocation rolls back; detected once Redis returns',
  async (t) => {
    await waitUntilReady(app);
    const session = await registerAndLogin(app);
    const rotated = await refresh(app, session.refreshToken);
    t.equal(rotated.statusCode, 200);

    await proxy.cut();
    try {
      const reused = await refresh(app, session.refreshToken);
      assertError(t, reused, 503, 'SERVICE_UNAVAILABLE', 'reuse needs the deny-list');
    } finally {
      await proxy.restore();
    }
    t.equal((await sessionRow(app, session.sessionId))?.revokedAt, null, 'the session revocation rolled back');
    t.equal((await eventsOf(app, session.account.id, 'refresh_token_reused')).length, 0, 'and the event with it');

    await waitUntilReady(app);
    assertError(t, await refresh(app, session.refreshToken), 401, 'REFRESH_TOKEN_REUSED', 'after Redis returns');
    assertError(t, await me(app, rotated.json().accessToken), 401, 'TOKEN_REVOKED');
    t.equal((await eventsOf(app, session.account.id, 'refresh_token_reused')).length, 1);
  },
);
