// POST /auth/refresh on real Postgres and Redis, with a movable clock: rotation, the reuse grace interval and its
// boundary, reuse detection, invalid and expired tokens, the session's absolute lifetime, current roles, and the
// refresh cookie with its CSRF rule.
import { eq } from 'drizzle-orm';
import t from 'tap';
import { refreshTokens, users } from '../../../src/db/schema.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  assertError,
  COOKIES,
  claimsOf,
  cookiesOf,
  cookieValues,
  eventsOf,
  login,
  loginWithCookies,
  me,
  refresh,
  refreshTokenRow,
  register,
  registerAndLogin,
  sessionRow,
} from '../../helpers/session-flow.js';

const ACCESS_TTL = 60;
const REFRESH_TTL = 1800;
const SESSION_MAX_AGE = 3600;
const TOLERANCE = 30;
const REUSE_INTERVAL_MS = 10_000;

// Half-way through a second, so whole-second rounding shows up.
const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000 + 500);
const { app, redis, redisKey } = await buildTestApp(t, {
  clock,
  env: {
    ACCESS_TOKEN_TTL: String(ACCESS_TTL),
    REFRESH_TOKEN_TTL: String(REFRESH_TTL),
    SESSION_MAX_AGE: String(SESSION_MAX_AGE),
    CLOCK_TOLERANCE: String(TOLERANCE),
  },
});

const BASE64URL_256 = /^[A-Za-z0-9_-]{43,}$/;

t.test('rotation: a new distinct pair in the same session; the old token counts as used', async (t) => {
  const first = await registerAndLogin(app);
  const response = await refresh(app, first.refreshToken);
  t.equal(response.statusCode, 200);
  t.equal(response.headers['cache-control'], 'no-store');
  t.notOk(response.headers['set-cookie'], 'body transport sets no cookies');
  const body = response.json();
  t.strictSame(Object.keys(body).sort(), [
    'accessToken',
    'expiresIn',
    'refreshExpiresIn',
    'refreshToken',
    'tokenType',
    'user',
  ]);
  t.equal(body.tokenType, 'Bearer');
  t.equal(body.expiresIn, ACCESS_TTL);
  t.equal(body.refreshExpiresIn, REFRESH_TTL);
  t.equal(body.user.id, first.account.id);
  t.match(body.refreshToken, BASE64URL_256, 'at least 256 bits, base64url');
  t.not(body.refreshToken, first.refreshToken, 'a new refresh token');
  t.not(body.accessToken, first.accessToken, 'a new access token');
  const claims = claimsOf(body.accessToken);
  t.equal(claims.sid, first.sessionId, 'same session');
  t.not(claims.jti, claimsOf(first.accessToken).jti, 'a new jti');
  t.equal(claims.exp - claims.iat, ACCESS_TTL);

  const old = await refreshTokenRow(app, first.refreshToken);
  const child = await refreshTokenRow(app, body.refreshToken);
  t.equal(old?.usedAt?.getTime(), clock.now(), 'the presented token is marked used now');
  t.equal(child?.parentId, old?.id, 'the child names its parent');
  t.equal(child?.sessionId, first.sessionId);
  t.equal(child?.usedAt, null);
  t.equal(child?.expiresAt.getTime(), clock.now() + REFRESH_TTL * 1000, 'the child lives REFRESH_TOKEN_TTL');
  t.equal(child?.tokenHash.includes(body.refreshToken), false, 'only a hash is stored');

  t.equal((await me(app, body.accessToken)).statusCode, 200, 'the new access token works');
  t.equal((await me(app, first.accessToken)).statusCode, 200, 'rotation alone does not revoke the old access token');
  t.equal((await refresh(app, body.refreshToken)).statusCode, 200, 'the child rotates in turn');
});

t.test('the reuse grace interval, its boundary, and reuse detection', async (t) => {
  const first = await registerAndLogin(app);
  const usedAt = clock.now();
  const rotated = await refresh(app, first.refreshToken);
  t.equal(rotated.statusCode, 200);
  const child = rotated.json();

  clock.advance(REUSE_INTERVAL_MS - 1);
  const again = await refresh(app, first.refreshToken);
  t.equal(again.statusCode, 200, 'inside the grace interval: an answer, not reuse');
  const repeat = again.json();
  t.equal(repeat.refreshToken, child.refreshToken, 'the one child the first use produced, again');
  t.not(repeat.accessToken, child.accessToken, 'with a fresh access token');
  t.equal(claimsOf(repeat.accessToken).sid, first.sessionId, 'in the same session');
  t.equal(repeat.refreshExpiresIn, child.refreshExpiresIn - 10, "the child's own remaining lifetime");
  const parent = await refreshTokenRow(app, first.refreshToken);
  t.equal(parent?.usedAt?.getTime(), usedAt, 'the grace interval counts from the first use, not extended');
  t.equal((await sessionRow(app, first.sessionId))?.revokedAt, null, 'nothing revoked');
  const live = await app.db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, first.sessionId));
  t.equal(live.filter((row) => !row.usedAt).length, 1, 'the session has one live refresh token');

  t.equal((await me(app, child.accessToken)).statusCode, 200, "the first answer's access token works");
  t.equal((await me(app, repeat.accessToken)).statusCode, 200, "the repeat's access token works");
  const fromChild = await refresh(app, child.refreshToken);
  t.equal(fromChild.statusCode, 200, 'the child rotates');
  const newest = fromChild.json();

  clock.advance(1);
  const reused = await refresh(app, first.refreshToken);
  assertError(t, reused, 401, 'REFRESH_TOKEN_REUSED', 'exactly at the interval: reuse');

  // The whole session is gone: its newest refresh token and every access token in it.
  assertError(t, await refresh(app, newest.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'newest refresh token');
  assertError(t, await me(app, newest.accessToken), 401, 'TOKEN_REVOKED', 'newest access token');
  assertError(t, await me(app, first.accessToken), 401, 'TOKEN_REVOKED', 'the first access token');
  assertError(t, await refresh(app, first.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'presenting it a third time');

  const session = await sessionRow(app, first.sessionId);
  t.equal(session?.revokedAt?.getTime(), clock.now(), 'session revoked');
  const rows = await app.db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, first.sessionId));
  t.equal(rows.length, 3, 'the family is a chain: login, child, grandchild');
  t.ok(
    rows.every((row) => row.revokedAt?.getTime() === clock.now()),
    'every refresh token of the session revoked',
  );

  const ttl = await redis.pttl(redisKey(`{deny}:sid:${first.sessionId}`));
  const expected = (ACCESS_TTL + TOLERANCE) * 1000;
  t.ok(ttl > expected - 1000 && ttl <= expected, `deny:sid TTL ${ttl} ≈ ${expected} ms (access TTL + tolerance)`);

  const events = await eventsOf(app, first.account.id, 'refresh_token_reused');
  t.equal(events.length, 1, 'one refresh_token_reused event');
  t.equal(events[0]?.at.getTime(), clock.now());
  t.match(events[0]?.details, { sessionId: first.sessionId });
});

t.test('reuse long after rotation revokes the session; other sessions of the user are untouched', async (t) => {
  const account = await register(app);
  const victim = await login(app, account);
  const other = await login(app, account);
  const rotated = (await refresh(app, victim.refreshToken)).json();
  clock.advance(60_000);
  assertError(t, await refresh(app, victim.refreshToken), 401, 'REFRESH_TOKEN_REUSED');
  assertError(t, await refresh(app, rotated.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
  assertError(t, await me(app, rotated.accessToken), 401, 'TOKEN_REVOKED');
  t.equal((await me(app, other.accessToken)).statusCode, 200, "the user's other session keeps its access token");
  t.equal((await refresh(app, other.refreshToken)).statusCode, 200, 'and its refresh token');
  t.equal((await eventsOf(app, account.id, 'refresh_token_reused')).length, 1);
});

t.test('no refresh token at all: 401 REFRESH_TOKEN_INVALID', async (t) => {
  assertError(t, await app.inject({ method: 'POST', url: '/auth/refresh' }), 401, 'REFRESH_TOKEN_INVALID', 'no body');
  assertError(
    t,
    await app.inject({ method: 'POST', url: '/auth/refresh', payload: {} }),
    401,
    'REFRESH_TOKEN_INVALID',
    'empty object',
  );
  assertError(
    t,
    await app.inject({ method: 'POST', url: '/auth/refresh', payload: { transport: 'cookie' } }),
    401,
    'REFRESH_TOKEN_INVALID',
    'transport only',
  );
});

t.test('malformed bodies: 400 VALIDATION_FAILED', async (t) => {
  for (const payload of [{ refreshToken: '' }, { refreshToken: 'x'.repeat(513) }, { refreshToken: 'x', extra: 1 }]) {
    const response = await app.inject({ method: 'POST', url: '/auth/refresh', payload });
    assertError(t, response, 400, 'VALIDATION_FAILED', JSON.stringify(payload));
  }
  const badTransport = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    payload: { refreshToken: 'x', transport: 'header' },
  });
  assertError(t, badTransport, 400, 'VALIDATION_FAILED', 'unknown transport');
});

t.test('unknown tokens: REFRESH_TOKEN_INVALID', async (t) => {
  const { refreshToken } = await registerAndLogin(app);
  for (const token of ['not-a-token', 'A'.repeat(43), `${refreshToken}x`, refreshToken.slice(1)]) {
    assertError(t, await refresh(app, token), 401, 'REFRESH_TOKEN_INVALID', token.slice(0, 12));
  }
  t.equal((await refresh(app, refreshToken)).statusCode, 200, 'the real one still works');
});

t.test('expired refresh token: REFRESH_TOKEN_INVALID from exactly REFRESH_TOKEN_TTL on', async (t) => {
  const early = await registerAndLogin(app);
  const late = await registerAndLogin(app);
  clock.advance(REFRESH_TTL * 1000 - 1);
  t.equal((await refresh(app, early.refreshToken)).statusCode, 200, 'one millisecond before expiry: accepted');
  clock.advance(1);
  assertError(t, await refresh(app, late.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'at expiry');
  clock.advance(60_000);
  assertError(t, await refresh(app, late.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'after expiry');
  t.equal((await refreshTokenRow(app, late.refreshToken))?.usedAt, null, 'an expired token is never marked used');
  t.equal((await eventsOf(app, late.account.id, 'refresh_token_reused')).length, 0, 'not treated as reuse');
});

t.test('revoked refresh token (after logout): REFRESH_TOKEN_INVALID, not reuse', async (t) => {
  const { refreshToken, account } = await registerAndLogin(app);
  const logout = await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken } });
  t.equal(logout.statusCode, 204);
  assertError(t, await refresh(app, refreshToken), 401, 'REFRESH_TOKEN_INVALID');
  t.equal((await eventsOf(app, account.id, 'refresh_token_reused')).length, 0);
});

t.test('refresh never outlives SESSION_MAX_AGE', async (t) => {
  const start = clock.now();
  const first = await registerAndLogin(app);
  const session = await sessionRow(app, first.sessionId);
  t.equal(session?.expiresAt.getTime(), start + SESSION_MAX_AGE * 1000, 'the session ends SESSION_MAX_AGE after login');

  clock.advance(1500 * 1000);
  const second = await refresh(app, first.refreshToken);
  t.equal(second.statusCode, 200);
  t.equal(second.json().refreshExpiresIn, REFRESH_TTL, 'far from the end: the full TTL');

  clock.advance(1500 * 1000); // 3000 s in: 600 s of the session left, less than the refresh TTL
  const third = await refresh(app, second.json().refreshToken);
  t.equal(third.statusCode, 200);
  t.equal(third.json().refreshExpiresIn, 600, 'capped at the session end');
  t.equal(
    (await refreshTokenRow(app, third.json().refreshToken))?.expiresAt.getTime(),
    start + SESSION_MAX_AGE * 1000,
    'the stored expiry is the session end',
  );

  // The cookie transport caps the cookies' Max-Age the same way.
  clock.advance(100 * 1000);
  const viaCookie = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    payload: { refreshToken: third.json().refreshToken, transport: 'cookie' },
  });
  t.equal(viaCookie.statusCode, 200);
  t.equal(viaCookie.json().refreshExpiresIn, 500);
  const cookies = cookiesOf(viaCookie);
  t.equal(cookies[COOKIES.refresh]?.maxAge, 500, 'refresh cookie Max-Age capped');
  t.equal(cookies[COOKIES.csrf]?.maxAge, 500, 'csrf cookie Max-Age capped');
  t.equal(cookies[COOKIES.access]?.maxAge, ACCESS_TTL);
  const last = cookies[COOKIES.refresh]?.value as string;

  clock.advance(500 * 1000); // exactly the session end
  assertError(t, await refresh(app, last), 401, 'REFRESH_TOKEN_INVALID', 'at the session end');
  clock.advance(1000);
  assertError(t, await refresh(app, last), 401, 'REFRESH_TOKEN_INVALID', 'past the session end');
});

t.test('refresh mints tokens with the current roles', async (t) => {
  const first = await registerAndLogin(app);
  t.strictSame(claimsOf(first.accessToken).roles, ['user']);
  await app.db
    .update(users)
    .set({ roles: ['user', 'admin'] })
    .where(eq(users.id, first.account.id));
  const response = await refresh(app, first.refreshToken);
  t.equal(response.statusCode, 200);
  t.strictSame(claimsOf(response.json().accessToken).roles, ['user', 'admin'], 'the JWT carries the new roles');
  t.strictSame(response.json().user.roles, ['user', 'admin'], 'and so does the user in the body');
});

t.test('refresh updates sessions.last_used_at', async (t) => {
  const first = await registerAndLogin(app);
  const created = clock.now();
  const before = await sessionRow(app, first.sessionId);
  t.equal(before?.lastUsedAt.getTime(), created, 'last used at login');
  clock.advance(1234);
  t.equal((await refresh(app, first.refreshToken)).statusCode, 200);
  const after = await sessionRow(app, first.sessionId);
  t.equal(after?.lastUsedAt.getTime(), created + 1234, 'last used at the refresh');
  t.equal(after?.createdAt.getTime(), created, 'created_at unchanged');
  t.equal(after?.expiresAt.getTime(), before?.expiresAt.getTime(), 'the absolute expiry never moves');

  const listed = await app.inject({
    method: 'GET',
    url: '/auth/sessions',
    headers: { authorization: `Bearer ${first.accessToken}` },
  });
  t.equal(listed.json().items[0]?.lastUsedAt, new Date(created + 1234).toISOString(), 'and the list shows it');
});

t.test('refresh via the refresh cookie', async (t) => {
  t.test('transport defaults to cookie: new cookies, no tokens in the body', async (t) => {
    const session = await loginWithCookies(app, await register(app));
    const response = await app.inject({
      method: 'POST',
      url: '/auth/refresh',
      cookies: session.cookies,
      headers: { 'x-csrf-token': session.csrf },
    });
    t.equal(response.statusCode, 200);
    const body = response.json();
    t.notOk(body.accessToken, 'no access token in the body');
    t.notOk(body.refreshToken, 'no refresh token in the body');
    t.equal(body.tokenType, 'Bearer');
    t.equal(body.expiresIn, ACCESS_TTL);
    t.equal(body.refreshExpiresIn, REFRESH_TTL);
    t.equal(body.user.id, session.account.id);

    const cookies = cookiesOf(response);
    t.match(cookies[COOKIES.access], {
      path: '/',
      httpOnly: true,
      secure: true,
      sameSite: 'Strict',
      maxAge: ACCESS_TTL,
    });
    t.match(cookies[COOKIES.refresh], {
      path: '/auth',
      httpOnly: true,
      secure: true,
      sameSite: 'Strict',
      maxAge: REFRESH_TTL,
    });
    t.match(cookies[COOKIES.csrf], { path: '/', secure: true, sameSite: 'Strict', maxAge: REFRESH_TTL });
    t.notOk(cookies[COOKIES.csrf]?.httpOnly, 'the csrf cookie is readable by scripts');
    const values = cookieValues(response);
    t.not(values[COOKIES.access], session.access, 'a new access cookie');
    t.not(values[COOKIES.refresh], session.refresh, 'a new refresh cookie');
    t.not(values[COOKIES.csrf], session.csrf, 'a new csrf value');
    t.equal(claimsOf(values[COOKIES.access] as string).sid, session.sessionId, 'same session');
    t.ok((await refreshTokenRow(app, session.refresh))?.usedAt, 'the cookie token is used');
    t.equal((await me(app, values[COOKIES.access] as string)).statusCode, 200, 'the new access token works');

    // The new cookies refresh again with the new csrf value; the old csrf value no longer matches.
    const stale = await app.inject({
      method: 'POST',
      url: '/auth/refresh',
      cookies: values,
      headers: { 'x-csrf-token': session.csrf },
    });
    assertError(t, stale, 403, 'CSRF_FAILED', 'the previous csrf value');
    const next = await app.inject({
      method: 'POST',
      url: '/auth/refresh',
      cookies: values,
      headers: { 'x-csrf-token': values[COOKIES.csrf] as string },
    });
    t.equal(next.statusCode, 200, 'the new cookies rotate with the new csrf value');
  });

  t.test('without a matching X-CSRF-Token: 403 CSRF_FAILED, and the token is not consumed', async (t) => {
    const session = await loginWithCookies(app, await register(app));
    const cases: [string, Record<string, string>, Record<string, string>][] = [
      ['no header', session.cookies, {}],
      ['wrong value', session.cookies, { 'x-csrf-token': `${session.csrf}x` }],
      ['empty value', session.cookies, { 'x-csrf-token': '' }],
      ['the refresh token as value', session.cookies, { 'x-csrf-token': session.refresh }],
      [
        'header but no csrf cookie',
        { [COOKIES.refresh]: session.refresh, [COOKIES.access]: session.access },
        { 'x-csrf-token': session.csrf },
      ],
    ];
    for (const [label, cookies, headers] of cases) {
      const response = await app.inject({ method: 'POST', url: '/auth/refresh', cookies, headers });
      assertError(t, response, 403, 'CSRF_FAILED', label);
      t.notOk(response.headers['set-cookie'], `${label}: no cookies set`);
    }
    t.equal((await refreshTokenRow(app, session.refresh))?.usedAt, null, 'the refresh token was never used');
    const ok = await app.inject({
      method: 'POST',
      url: '/auth/refresh',
      cookies: session.cookies,
      headers: { 'x-csrf-token': session.csrf },
    });
    t.equal(ok.statusCode, 200, 'it still rotates once the header matches');
  });

  t.test('a body token wins over the cookie and needs no CSRF header', async (t) => {
    const cookieSession = await loginWithCookies(app, await register(app));
    const bodySession = await registerAndLogin(app);
    const response = await app.inject({
      method: 'POST',
      url: '/auth/refresh',
      cookies: cookieSession.cookies,
      payload: { refreshToken: bodySession.refreshToken },
    });
    t.equal(response.statusCode, 200);
    t.notOk(response.headers['set-cookie'], 'transport defaults to body for a body token');
    const body = response.json();
    t.ok(body.accessToken && body.refreshToken, 'tokens in the body');
    t.equal(body.user.id, bodySession.account.id, "the body token's user");
    t.equal(claimsOf(body.accessToken).sid, bodySession.sessionId, "the body token's session");
    t.ok((await refreshTokenRow(app, bodySession.refreshToken))?.usedAt, 'the body token was rotated');
    t.equal((await refreshTokenRow(app, cookieSession.refresh))?.usedAt, null, 'the cookie token was not touched');
  });

  t.test('an explicit transport overrides the default', async (t) => {
    const session = await loginWithCookies(app, await register(app));
    const response = await app.inject({
      method: 'POST',
      url: '/auth/refresh',
      cookies: session.cookies,
      headers: { 'x-csrf-token': session.csrf },
      payload: { transport: 'body' },
    });
    t.equal(response.statusCode, 200);
    t.notOk(response.headers['set-cookie'], 'no cookies');
    t.ok(response.json().accessToken && response.json().refreshToken, 'tokens in the body');

    const fromBody = await registerAndLogin(app);
    const toCookies = await app.inject({
      method: 'POST',
      url: '/auth/refresh',
      payload: { refreshToken: fromBody.refreshToken, transport: 'cookie' },
    });
    t.equal(toCookies.statusCode, 200);
    t.notOk(toCookies.json().accessToken, 'no tokens in the body');
    t.ok(cookieValues(toCookies)[COOKIES.refresh], 'a refresh cookie');
  });

  t.test('a reused refresh cookie: REFRESH_TOKEN_REUSED', async (t) => {
    const session = await loginWithCookies(app, await register(app));
    const rotate = () =>
      app.inject({
        method: 'POST',
        url: '/auth/refresh',
        cookies: session.cookies,
        headers: { 'x-csrf-token': session.csrf },
      });
    t.equal((await rotate()).statusCode, 200);
    clock.advance(REUSE_INTERVAL_MS);
    assertError(t, await rotate(), 401, 'REFRESH_TOKEN_REUSED');
  });
});

t.test('inside the grace interval, twenty parallel refreshes all get the one child', async (t) => {
  const first = await registerAndLogin(app);
  const responses = await Promise.all(Array.from({ length: 20 }, () => refresh(app, first.refreshToken)));
  t.strictSame(
    responses.map((response) => response.statusCode),
    Array(20).fill(200),
    'the same client racing itself',
  );
  const tokens = responses.map((response) => response.json().refreshToken as string);
  t.equal(new Set(tokens).size, 1, 'one refresh token for all twenty');
  t.ok(
    responses.every((response) => claimsOf(response.json().accessToken).sid === first.sessionId),
    'all in the one session',
  );
  const rows = await app.db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, first.sessionId));
  t.equal(rows.length, 2, 'the login token and its one child: no fork');
  t.equal((await sessionRow(app, first.sessionId))?.revokedAt, null, 'nothing revoked');
  t.equal((await eventsOf(app, first.account.id, 'refresh_token_reused')).length, 0);
});

t.test('a grace answer cannot fork the session: the child, rotated past, is reuse after the interval', async (t) => {
  for (let round = 0; round < 5; round++) {
    const first = await registerAndLogin(app);
    const child = (await refresh(app, first.refreshToken)).json();
    const thief = (await refresh(app, first.refreshToken)).json();
    t.equal(thief.refreshToken, child.refreshToken, `round ${round}: a second presenter gets the same child`);
    const grandchild = await refresh(app, child.refreshToken);
    t.equal(grandchild.statusCode, 200, 'the client rotates past it');
    clock.advance(REUSE_INTERVAL_MS);
    assertError(t, await refresh(app, thief.refreshToken), 401, 'REFRESH_TOKEN_REUSED', 'the copy is reuse');
    assertError(t, await refresh(app, grandchild.json().refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'session dead');
    t.ok((await sessionRow(app, first.sessionId))?.revokedAt, 'and revoked');
  }
});
