// Ending sessions while Redis is unreachable (a cuttable TCP proxy, never a mock): the change commits in Postgres
// first and its deny-list write comes after; that write fails, so the client gets 503 SERVICE_UNAVAILABLE, and the
// instance rebuilds the deny-list from Postgres before it trusts Redis again: the ended session never comes back.
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

/** The logout was kept: the session, its tokens, the event and the durable deny-list row are all in Postgres. */
async function assertEnded(t: Asserts, session: LoggedIn, label: string) {
  t.ok((await sessionRow(app, session.sessionId))?.revokedAt, `${label}: session revoked in Postgres`);
  const tokens = await app.db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, session.sessionId));
  t.ok(
    tokens.every((token) => token.revokedAt !== null),
    `${label}: refresh tokens revoked`,
  );
  t.equal((await eventsOf(app, session.account.id, 'logged_out')).length, 1, `${label}: one logged_out event`);
  const durable = await app.db.select().from(revocations).where(eq(revocations.value, session.sessionId));
  t.equal(durable.length, 1, `${label}: its revocation row`);
}

/** GET /users/me until it answers something but 503 (bounded); every status seen, and the last response. */
async function settled(token: string) {
  const seen: number[] = [];
  const deadline = Date.now() + 15_000;
  for (;;) {
    const response = await me(app, token);
    seen.push(response.statusCode);
    if (response.statusCode !== 503 || Date.now() > deadline) return { seen, last: response };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

t.test(
  'logout while Redis is down: committed in Postgres, 503; once Redis returns, the tokens stay revoked',
  async (t) => {
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
    await assertEnded(t, byAccess, 'by access token');
    await assertEnded(t, byRefresh, 'by refresh token');

    await waitUntilReady(app);
    for (const [label, session] of [
      ['by access token', byAccess],
      ['by refresh token', byRefresh],
    ] as const) {
      const { seen, last } = await settled(session.accessToken);
      t.notOk(seen.includes(200), `${label}: never accepted again (${[...new Set(seen)].join(', ')})`);
      assertError(t, last, 401, 'TOKEN_REVOKED', `${label}: rejected once Redis is back`);
      assertError(t, await refresh(app, session.refreshToken), 401, 'REFRESH_TOKEN_INVALID', `${label}: refresh`);
    }
    const retry = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(byAccess.accessToken) });
    t.equal(retry.statusCode, 204, 'the retried logout succeeds (idempotent)');
    t.equal((await eventsOf(app, byAccess.account.id, 'logged_out')).length, 1, 'and ends nothing twice');
  },
);

t.test('refresh reuse while Redis is down: the session ends in Postgres, 503; its tokens stay revoked', async (t) => {
  await waitUntilReady(app);
  const session = await registerAndLogin(app);
  const rotated = await refresh(app, session.refreshToken);
  t.equal(rotated.statusCode, 200);

  await proxy.cut();
  try {
    const reused = await refresh(app, session.refreshToken);
    assertError(t, reused, 503, 'SERVICE_UNAVAILABLE', 'the deny-list write failed');
  } finally {
    await proxy.restore();
  }
  t.ok((await sessionRow(app, session.sessionId))?.revokedAt, 'the session revocation committed');
  t.equal((await eventsOf(app, session.account.id, 'refresh_token_reused')).length, 1, 'and the event with it');

  await waitUntilReady(app);
  const { seen, last } = await settled(rotated.json().accessToken);
  t.notOk(seen.includes(200), 'the rotated access token is never accepted again');
  assertError(t, last, 401, 'TOKEN_REVOKED');
  assertError(t, await refresh(app, session.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'the session is over');
  t.equal((await eventsOf(app, session.account.id, 'refresh_token_reused')).length, 1, 'one event');
});
