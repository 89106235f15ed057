// GET /auth/sessions and DELETE /auth/sessions/:id on real Postgres and Redis: only live sessions, newest first,
// `current`, keyset pagination that visits every session once, query validation, and revoking one session.
import { eq, inArray } from 'drizzle-orm';
import t from 'tap';
import { sessions } from '../../../src/db/schema.js';
import { buildTestApp } from '../../helpers/app.js';
import {
  assertError,
  bearer,
  COOKIES,
  eventsOf,
  type Headers,
  login,
  loginWithCookies,
  me,
  refresh,
  register,
  registerAndLogin,
  sessionRow,
} from '../../helpers/session-flow.js';

const { app, config, redis, redisKey } = await buildTestApp(t);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

interface SessionItem {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  userAgent: string | null;
  ip: string | null;
  current: boolean;
}

function list(headers: Headers, query = '') {
  return app.inject({ method: 'GET', url: `/auth/sessions${query}`, headers });
}

function revoke(headers: Headers, id: string, cookies?: Record<string, string>) {
  return app.inject({ method: 'DELETE', url: `/auth/sessions/${id}`, headers, cookies });
}

/** Every page, following nextCursor. */
async function walk(headers: Headers, limit: number): Promise<{ pages: SessionItem[][]; items: SessionItem[] }> {
  const pages: SessionItem[][] = [];
  let cursor: string | null = null;
  do {
    const query: string = `?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const response = await list(headers, query);
    if (response.statusCode !== 200) throw new Error(`list failed: ${response.statusCode} ${response.body}`);
    const body = response.json();
    pages.push(body.items);
    cursor = body.nextCursor;
    if (pages.length > 50) throw new Error('pagination does not end');
  } while (cursor);
  return { pages, items: pages.flat() };
}

t.test('only live sessions of the caller, newest first, with `current` on the caller’s', async (t) => {
  const account = await register(app);
  const oldest = await login(app, account, { 'user-agent': 'agent/one' });
  const revoked = await login(app, account, { 'user-agent': 'agent/two' });
  const expired = await login(app, account, { 'user-agent': 'agent/three' });
  const middle = await login(app, account, { 'user-agent': 'agent/four' });
  const newest = await login(app, account, { 'user-agent': 'agent/five' });
  const stranger = await registerAndLogin(app);

  t.equal((await revoke(bearer(newest.accessToken), revoked.sessionId)).statusCode, 204);
  await app.db
    .update(sessions)
    .set({ expiresAt: new Date(Date.now() - 1000) })
    .where(eq(sessions.id, expired.sessionId));

  const response = await list(bearer(middle.accessToken));
  t.equal(response.statusCode, 200);
  const body = response.json();
  t.strictSame(Object.keys(body).sort(), ['items', 'nextCursor']);
  t.equal(body.nextCursor, null, 'one page');
  const items: SessionItem[] = body.items;
  t.strictSame(
    items.map((item) => item.id),
    [newest.sessionId, middle.sessionId, oldest.sessionId],
    'live sessions only, newest first',
  );
  t.strictSame(
    items.map((item) => item.current),
    [false, true, false],
    'current only for the session making the request',
  );
  t.strictSame(
    items.map((item) => item.userAgent),
    ['agent/five', 'agent/four', 'agent/one'],
  );
  for (const item of items) {
    t.strictSame(Object.keys(item).sort(), [
      'createdAt',
      'current',
      'expiresAt',
      'id',
      'ip',
      'lastUsedAt',
      'userAgent',
    ]);
    t.match(item.id, UUID);
    t.match(item.createdAt, ISO_MS);
    t.match(item.lastUsedAt, ISO_MS);
    t.match(item.expiresAt, ISO_MS);
    t.equal(item.ip, '127.0.0.1');
    t.equal(
      Date.parse(item.expiresAt) - Date.parse(item.createdAt),
      config.sessionMaxAge * 1000,
      'expiresAt is the absolute end',
    );
  }
  t.notOk(
    items.some((item) => item.id === stranger.sessionId),
    "another user's session is never listed",
  );

  const strangers = (await list(bearer(stranger.accessToken))).json().items as SessionItem[];
  t.strictSame(
    strangers.map((item) => [item.id, item.current]),
    [[stranger.sessionId, true]],
    'the other user sees only their own',
  );

  // A refresh moves lastUsedAt, not the order.
  t.equal((await refresh(app, oldest.refreshToken)).statusCode, 200);
  const again = (await list(bearer(middle.accessToken))).json().items as SessionItem[];
  t.strictSame(
    again.map((item) => item.id),
    [newest.sessionId, middle.sessionId, oldest.sessionId],
  );
  t.ok(Date.parse(again[2]?.lastUsedAt ?? '') > Date.parse(again[2]?.createdAt ?? ''), 'lastUsedAt moved');
});

t.test('pagination with limit and cursor walks every session exactly once', async (t) => {
  const account = await register(app);
  const logins = [];
  for (let i = 0; i < 7; i++) logins.push(await login(app, account));
  const caller = logins[0];
  if (!caller) throw new Error('no login');
  const headers = bearer(caller.accessToken);
  const expected = logins.map((entry) => entry.sessionId).reverse();

  const full = (await list(headers)).json();
  t.strictSame(
    full.items.map((item: SessionItem) => item.id),
    expected,
    'default limit (20): all seven, newest first',
  );
  t.equal(full.nextCursor, null);

  const { pages, items } = await walk(headers, 3);
  t.strictSame(
    pages.map((page) => page.length),
    [3, 3, 1],
    'pages of three, then the rest',
  );
  t.strictSame(
    items.map((item) => item.id),
    expected,
    'every session once, in order',
  );

  const exact = await walk(headers, 7);
  t.strictSame(
    exact.pages.map((page) => page.length),
    [7],
    'limit equal to the count: one page, nextCursor null',
  );
  const ones = await walk(headers, 1);
  t.equal(ones.pages.length, 7, 'limit 1: seven pages');
  t.strictSame(
    ones.items.map((item) => item.id),
    expected,
  );

  // Sessions created in the same millisecond are ordered by id, and none is skipped or repeated.
  const tied = new Date(Date.now() - 60_000);
  const tiedIds = logins.slice(2, 6).map((entry) => entry.sessionId);
  await app.db.update(sessions).set({ createdAt: tied }).where(inArray(sessions.id, tiedIds));
  const walked = await walk(headers, 2);
  t.equal(walked.items.length, 7, 'seven items');
  t.equal(new Set(walked.items.map((item) => item.id)).size, 7, 'no session twice');
  const tiedOrder = walked.items.filter((item) => tiedIds.includes(item.id)).map((item) => item.id);
  t.strictSame(tiedOrder, [...tiedIds].sort().reverse(), 'ties ordered by id, descending');
  t.strictSame(
    walked.items
      .slice(-4)
      .map((item) => item.id)
      .sort(),
    [...tiedIds].sort(),
    'the tied (oldest) last',
  );
});

t.test('bad limit or cursor: 400 VALIDATION_FAILED', async (t) => {
  const session = await registerAndLogin(app);
  const headers = bearer(session.accessToken);
  for (const query of ['?limit=0', '?limit=101', '?limit=x', '?limit=-1', '?limit=1.5', '?limit=']) {
    assertError(t, await list(headers, query), 400, 'VALIDATION_FAILED', query);
  }
  const b64 = (value: string) => Buffer.from(value).toString('base64url');
  const cursors = [
    'not-a-cursor!',
    b64('{}'),
    b64('["yesterday","00000000-0000-0000-0000-000000000000"]'),
    b64(`["${new Date().toISOString()}","not-a-uuid"]`),
    b64(`["${new Date().toISOString()}"]`),
    'x'.repeat(201),
  ];
  for (const cursor of cursors) {
    assertError(t, await list(headers, `?cursor=${encodeURIComponent(cursor)}`), 400, 'VALIDATION_FAILED', cursor);
  }
  t.equal((await list(headers, '?limit=1')).statusCode, 200, 'limit 1');
  t.equal((await list(headers, '?limit=100')).statusCode, 200, 'limit 100');
  const valid = b64(`["${new Date().toISOString()}","${session.sessionId}"]`);
  t.equal((await list(headers, `?cursor=${valid}`)).statusCode, 200, 'a well-formed cursor');
});

t.test('listing needs a valid access token; by cookie, GET needs no CSRF header', async (t) => {
  assertError(t, await list({}), 401, 'TOKEN_MISSING');
  assertError(t, await list({ authorization: 'Bearer nope' }), 401, 'TOKEN_INVALID');
  const session = await loginWithCookies(app, await register(app));
  const response = await app.inject({ method: 'GET', url: '/auth/sessions', cookies: session.cookies });
  t.equal(response.statusCode, 200);
  t.strictSame(
    response.json().items.map((item: SessionItem) => [item.id, item.current]),
    [[session.sessionId, true]],
  );
});

t.test('DELETE /auth/sessions/:id of one of my sessions: 204, effective on the very next request', async (t) => {
  const account = await register(app);
  const caller = await login(app, account);
  const target = await login(app, account);
  const rotated = (await refresh(app, target.refreshToken)).json();
  const response = await revoke(bearer(caller.accessToken), target.sessionId);
  t.equal(response.statusCode, 204);
  t.equal(response.body, '');

  assertError(t, await me(app, rotated.accessToken), 401, 'TOKEN_REVOKED', 'its access token');
  assertError(t, await me(app, target.accessToken), 401, 'TOKEN_REVOKED', 'its older access token');
  assertError(t, await refresh(app, rotated.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'its refresh token');
  t.ok((await sessionRow(app, target.sessionId))?.revokedAt, 'revoked in Postgres');
  const ttl = await redis.pttl(redisKey(`{deny}:sid:${target.sessionId}`));
  const expected = (config.accessTokenTtl + config.clockTolerance) * 1000;
  t.ok(ttl <= expected && ttl > expected - 1000, `deny:sid TTL ${ttl} ≈ ${expected}`);
  const events = await eventsOf(app, account.id, 'session_revoked');
  t.equal(events.length, 1, 'a session_revoked event');
  t.match(events[0]?.details, { sessionId: target.sessionId });

  t.equal((await me(app, caller.accessToken)).statusCode, 200, "the caller's session is untouched");
  t.strictSame(
    (await list(bearer(caller.accessToken))).json().items.map((item: SessionItem) => item.id),
    [caller.sessionId],
    'no longer listed',
  );
  assertError(t, await revoke(bearer(caller.accessToken), target.sessionId), 404, 'NOT_FOUND', 'revoked twice');
});

t.test('DELETE of the current session ends it too', async (t) => {
  const session = await registerAndLogin(app);
  t.equal((await revoke(bearer(session.accessToken), session.sessionId)).statusCode, 204);
  assertError(t, await me(app, session.accessToken), 401, 'TOKEN_REVOKED');
  assertError(t, await refresh(app, session.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
});

t.test("another user's session, an unknown id: 404 NOT_FOUND; a malformed id: 400", async (t) => {
  const caller = await registerAndLogin(app);
  const victim = await registerAndLogin(app);
  const headers = bearer(caller.accessToken);
  assertError(t, await revoke(headers, victim.sessionId), 404, 'NOT_FOUND', "another user's session");
  t.equal((await me(app, victim.accessToken)).statusCode, 200, "the other user's session is untouched");
  t.equal((await sessionRow(app, victim.sessionId))?.revokedAt, null);
  assertError(t, await revoke(headers, '00000000-0000-4000-8000-000000000000'), 404, 'NOT_FOUND', 'unknown uuid');
  for (const id of ['not-a-uuid', '123', `${victim.sessionId}x`]) {
    assertError(t, await revoke(headers, id), 400, 'VALIDATION_FAILED', id);
  }
  t.equal((await eventsOf(app, caller.account.id, 'session_revoked')).length, 0, 'no event');
});

t.test('DELETE by cookie needs X-CSRF-Token; Bearer with cookies riding along does not', async (t) => {
  const account = await register(app);
  const cookieSession = await loginWithCookies(app, account);
  const target = await login(app, account);
  const second = await login(app, account);
  assertError(t, await revoke({}, target.sessionId, cookieSession.cookies), 403, 'CSRF_FAILED', 'no header');
  assertError(
    t,
    await revoke({ 'x-csrf-token': `${cookieSession.csrf}0` }, target.sessionId, cookieSession.cookies),
    403,
    'CSRF_FAILED',
    'wrong header',
  );
  t.equal((await me(app, target.accessToken)).statusCode, 200, 'nothing revoked');
  t.equal(
    (await revoke({ 'x-csrf-token': cookieSession.csrf }, target.sessionId, cookieSession.cookies)).statusCode,
    204,
    'cookie + header',
  );
  assertError(t, await me(app, target.accessToken), 401, 'TOKEN_REVOKED');
  t.equal(
    (
      await revoke(bearer(second.accessToken), cookieSession.sessionId, {
        [COOKIES.access]: cookieSession.access,
        [COOKIES.csrf]: cookieSession.csrf,
      })
    ).statusCode,
    204,
    'Bearer wins; no CSRF header needed',
  );
  assertError(t, await me(app, cookieSession.access), 401, 'TOKEN_REVOKED');
});
