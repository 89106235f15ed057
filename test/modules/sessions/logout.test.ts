// POST /auth/logout and POST /auth/logout-all on real Postgres and Redis: every credential a logout accepts, CSRF
// for cookie credentials, idempotence, the deny-list entries and their TTLs read back from Redis, cleared cookies,
// and logout-all's not-before time at millisecond precision.
import { and, eq } from 'drizzle-orm';
import t from 'tap';
import { refreshTokens, revocations } from '../../../src/db/schema.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import { attackerKey, mintWithOurKey, signRsa, uuidv7, validClaims } from '../../helpers/forge.js';
import {
  type Asserts,
  assertError,
  bearer,
  COOKIES,
  claimsOf,
  cookiesOf,
  eventsOf,
  type Headers,
  login,
  loginWithCookies,
  me,
  type Response,
  refresh,
  register,
  registerAndLogin,
  sessionRow,
} from '../../helpers/session-flow.js';

const ACCESS_TTL = 900;
const TOLERANCE = 30;
const MAX_ACCESS_LIFE_MS = (ACCESS_TTL + TOLERANCE) * 1000;

const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000 + 400);
const { app, config, redis, redisKey } = await buildTestApp(t, { clock });

function logout(options: { headers?: Headers; cookies?: Record<string, string>; payload?: object } = {}) {
  return app.inject({ method: 'POST', url: '/auth/logout', ...options });
}

function logoutAll(headers: Headers, cookies?: Record<string, string>) {
  return app.inject({ method: 'POST', url: '/auth/logout-all', headers, cookies });
}

const pttl = (key: string) => redis.pttl(redisKey(key));

/** Redis counts down in real time from the moment of the write: allow a second of slack below the exact TTL. */
async function assertTtl(t: Asserts, key: string, expectedMs: number, label: string) {
  const ttl = await pttl(key);
  t.ok(ttl <= expectedMs && ttl > expectedMs - 1000, `${label}: PTTL ${ttl} ≈ ${expectedMs} ms`);
}

function assertClearsCookies(t: Asserts, response: Response) {
  const cookies = cookiesOf(response);
  for (const [name, path] of [
    [COOKIES.access, '/'],
    [COOKIES.refresh, '/auth'],
    [COOKIES.csrf, '/'],
  ] as const) {
    t.match(cookies[name], { value: '', maxAge: 0, path }, `${name} cleared on ${path}`);
    t.equal(cookies[name]?.expires?.getTime(), 0, `${name} expires at the epoch`);
  }
}

/** The session is ended in Postgres, its refresh tokens revoked, and its access tokens deny-listed by sid. */
async function assertSessionEnded(t: Asserts, session: { sessionId: string; accessToken?: string }, label = '') {
  const row = await sessionRow(app, session.sessionId);
  t.ok(row?.revokedAt, `${label}session revoked in Postgres`);
  const live = await app.db
    .select()
    .from(refreshTokens)
    .where(and(eq(refreshTokens.sessionId, session.sessionId)));
  t.ok(
    live.every((token) => token.revokedAt !== null),
    `${label}its refresh tokens revoked`,
  );
  t.equal(await redis.get(redisKey(`{deny}:sid:${session.sessionId}`)), '1', `${label}sid deny-listed`);
  await assertTtl(t, `{deny}:sid:${session.sessionId}`, MAX_ACCESS_LIFE_MS, `${label}deny:sid`);
  if (session.accessToken) {
    assertError(t, await me(app, session.accessToken), 401, 'TOKEN_REVOKED', `${label}access token`);
  }
}

async function assertSessionLive(t: Asserts, session: { sessionId: string; accessToken: string }, label = '') {
  t.equal((await sessionRow(app, session.sessionId))?.revokedAt, null, `${label}session not revoked`);
  t.equal(await pttl(`{deny}:sid:${session.sessionId}`), -2, `${label}no sid deny-list entry`);
  t.equal((await me(app, session.accessToken)).statusCode, 200, `${label}access token still accepted`);
}

t.test('logout by access token (Bearer)', async (t) => {
  const session = await registerAndLogin(app);
  const other = await login(app, session.account);
  const response = await logout({ headers: bearer(session.accessToken) });
  t.equal(response.statusCode, 204);
  t.equal(response.body, '', 'no body');
  assertClearsCookies(t, response);

  const { jti, exp } = claimsOf(session.accessToken);
  t.equal(await redis.get(redisKey(`{deny}:jti:${jti}`)), '1', 'jti deny-listed');
  // revokeToken: until the token would have expired anyway, plus the verifier's clock tolerance.
  const jtiTtl = exp * 1000 + TOLERANCE * 1000 - clock.now();
  await assertTtl(t, `{deny}:jti:${jti}`, jtiTtl, 'deny:jti');
  const [durable] = await app.db.select().from(revocations).where(eq(revocations.value, jti));
  t.equal(durable?.kind, 'jti');
  t.equal(durable?.expiresAt.getTime(), exp * 1000 + TOLERANCE * 1000, 'the feed row expires with the entry');

  await assertSessionEnded(t, session);
  assertError(t, await refresh(app, session.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'its refresh token');
  const events = await eventsOf(app, session.account.id, 'logged_out');
  t.equal(events.length, 1, 'one logged_out event');
  t.match(events[0]?.details, { sessionId: session.sessionId });
  await assertSessionLive(t, other, 'the other session: ');
});

t.test('logout by refresh token in the body: its access tokens die at once', async (t) => {
  const session = await registerAndLogin(app);
  const rotated = (await refresh(app, session.refreshToken)).json();
  const response = await logout({ payload: { refreshToken: rotated.refreshToken } });
  t.equal(response.statusCode, 204);
  assertClearsCookies(t, response);
  await assertSessionEnded(t, { sessionId: session.sessionId, accessToken: rotated.accessToken });
  assertError(t, await me(app, session.accessToken), 401, 'TOKEN_REVOKED', 'the older access token too');
  assertError(t, await refresh(app, rotated.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'the refresh token');
  assertError(t, await refresh(app, session.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'the rotated-out one');
  t.equal(await pttl(`{deny}:jti:${claimsOf(rotated.accessToken).jti}`), -2, 'no jti entry: the sid entry covers it');
});

t.test('logout by an old (already rotated) refresh token still ends the session', async (t) => {
  const session = await registerAndLogin(app);
  const rotated = (await refresh(app, session.refreshToken)).json();
  t.equal((await logout({ payload: { refreshToken: session.refreshToken } })).statusCode, 204);
  await assertSessionEnded(t, { sessionId: session.sessionId, accessToken: rotated.accessToken });
});

t.test('logout by the refresh cookie with X-CSRF-Token', async (t) => {
  const session = await loginWithCookies(app, await register(app));
  const response = await logout({
    cookies: { [COOKIES.refresh]: session.refresh, [COOKIES.csrf]: session.csrf },
    headers: { 'x-csrf-token': session.csrf },
  });
  t.equal(response.statusCode, 204);
  assertClearsCookies(t, response);
  await assertSessionEnded(t, { sessionId: session.sessionId, accessToken: session.access });
  assertError(t, await refresh(app, session.refresh), 401, 'REFRESH_TOKEN_INVALID');
});

t.test('logout by the access cookie with X-CSRF-Token', async (t) => {
  const session = await loginWithCookies(app, await register(app));
  const response = await logout({
    cookies: { [COOKIES.access]: session.access, [COOKIES.csrf]: session.csrf },
    headers: { 'x-csrf-token': session.csrf },
  });
  t.equal(response.statusCode, 204);
  assertClearsCookies(t, response);
  t.equal(await redis.get(redisKey(`{deny}:jti:${claimsOf(session.access).jti}`)), '1', 'jti deny-listed');
  await assertSessionEnded(t, { sessionId: session.sessionId, accessToken: session.access });
  assertError(t, await refresh(app, session.refresh), 401, 'REFRESH_TOKEN_INVALID', 'its refresh token');
});

t.test('cookie logout without a matching X-CSRF-Token: 403 CSRF_FAILED, nothing ended', async (t) => {
  const session = await loginWithCookies(app, await register(app));
  const cases: [string, Record<string, string>, Headers][] = [
    ['all cookies, no header', session.cookies, {}],
    ['all cookies, wrong header', session.cookies, { 'x-csrf-token': 'nope' }],
    ['refresh cookie only, no header', { [COOKIES.refresh]: session.refresh }, {}],
    ['access cookie only, header', { [COOKIES.access]: session.access }, { 'x-csrf-token': session.csrf }],
  ];
  for (const [label, cookies, headers] of cases) {
    const response = await logout({ cookies, headers });
    assertError(t, response, 403, 'CSRF_FAILED', label);
    t.notOk(response.headers['set-cookie'], `${label}: cookies kept`);
  }
  await assertSessionLive(t, { sessionId: session.sessionId, accessToken: session.access });
  t.equal((await eventsOf(app, session.account.id, 'logged_out')).length, 0, 'no logged_out event');
});

t.test('explicit credentials win over cookies riding along, and need no CSRF header', async (t) => {
  const account = await register(app);
  const cookieSession = await loginWithCookies(app, account);
  const bearerSession = await login(app, account);
  const bodySession = await login(app, account);
  t.equal(
    (await logout({ headers: bearer(bearerSession.accessToken), cookies: cookieSession.cookies })).statusCode,
    204,
    'Bearer header with cookies',
  );
  t.equal(
    (await logout({ payload: { refreshToken: bodySession.refreshToken }, cookies: cookieSession.cookies })).statusCode,
    204,
    'body refresh token with cookies',
  );
  await assertSessionEnded(t, bearerSession, 'Bearer: ');
  await assertSessionEnded(t, bodySession, 'body: ');
  await assertSessionLive(t, { sessionId: cookieSession.sessionId, accessToken: cookieSession.access }, 'cookies: ');
});

t.test('an access token and a refresh token of different sessions end both', async (t) => {
  const account = await register(app);
  const one = await login(app, account);
  const two = await login(app, account);
  const response = await logout({ headers: bearer(one.accessToken), payload: { refreshToken: two.refreshToken } });
  t.equal(response.statusCode, 204);
  await assertSessionEnded(t, one, 'access token: ');
  await assertSessionEnded(t, two, 'refresh token: ');
  t.equal((await eventsOf(app, account.id, 'logged_out')).length, 2);
});

t.test('logout is idempotent: a second logout is 204 too', async (t) => {
  const session = await registerAndLogin(app);
  t.equal((await logout({ headers: bearer(session.accessToken) })).statusCode, 204);
  const again = await logout({ headers: bearer(session.accessToken) });
  t.equal(again.statusCode, 204, 'the same (now revoked) access token');
  assertClearsCookies(t, again);
  t.equal((await logout({ payload: { refreshToken: session.refreshToken } })).statusCode, 204, 'its refresh token');
  t.equal(
    (await logout({ payload: { refreshToken: 'never-issued-refresh-token' } })).statusCode,
    204,
    'an unknown refresh token',
  );
  t.equal((await eventsOf(app, session.account.id, 'logged_out')).length, 1, 'only the first logout is an event');
});

t.test('no credential at all: 401 TOKEN_MISSING', async (t) => {
  assertError(t, await logout(), 401, 'TOKEN_MISSING', 'no body');
  assertError(t, await logout({ payload: {} }), 401, 'TOKEN_MISSING', 'empty body');
  assertError(t, await logout({ headers: { authorization: 'Basic dXNlcjpwYXNz' } }), 401, 'TOKEN_MISSING', 'Basic');
  assertError(t, await logout({ cookies: { [COOKIES.csrf]: 'x' } }), 401, 'TOKEN_MISSING', 'csrf cookie only');
});

t.test('an expired access token still logs out', async (t) => {
  const session = await registerAndLogin(app);
  clock.advance((ACCESS_TTL + TOLERANCE + 60) * 1000);
  assertError(t, await me(app, session.accessToken), 401, 'TOKEN_EXPIRED', 'expired for every other route');
  const response = await logout({ headers: bearer(session.accessToken) });
  t.equal(response.statusCode, 204);
  t.equal(await pttl(`{deny}:jti:${claimsOf(session.accessToken).jti}`), -2, 'no jti entry for a token already dead');
  await assertSessionEnded(t, { sessionId: session.sessionId });
  assertError(t, await refresh(app, session.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'its refresh token');
});

t.test('a forged access token alone: 401 TOKEN_INVALID, and it ends nothing', async (t) => {
  const session = await registerAndLogin(app);
  const claims = validClaims({
    issuer: config.issuer,
    audience: config.audience,
    subject: session.account.id,
    sessionId: session.sessionId,
    nowMs: clock.now(),
  });
  const attacker = attackerKey();
  const forged = signRsa({ alg: 'RS256', typ: 'at+jwt', kid: attacker.kid }, claims, attacker.privateKey);
  assertError(t, await logout({ headers: bearer(forged) }), 401, 'TOKEN_INVALID', 'signed by another key');
  const [header, payload] = session.accessToken.split('.');
  const tampered = `${header}.${payload}.${Buffer.from('not the signature').toString('base64url')}`;
  assertError(t, await logout({ headers: bearer(tampered) }), 401, 'TOKEN_INVALID', 'bad signature');
  assertError(t, await logout({ headers: { authorization: 'Bearer ' } }), 401, 'TOKEN_INVALID', 'empty Bearer');
  await assertSessionLive(t, session);

  // With a refresh token beside it, the forged token is ignored and the refresh token logs out.
  const withRefresh = await logout({ headers: bearer(forged), payload: { refreshToken: session.refreshToken } });
  t.equal(withRefresh.statusCode, 204, 'forged access token + valid refresh token');
  await assertSessionEnded(t, session);
});

t.test('logout-all: every session and access token of the caller, at once', async (t) => {
  const account = await register(app);
  const caller = await login(app, account);
  const second = await login(app, account);
  const third = await loginWithCookies(app, account);
  const bystander = await registerAndLogin(app);
  const rotated = (await refresh(app, second.refreshToken)).json();

  clock.advance(5);
  const response = await logoutAll(bearer(caller.accessToken));
  t.equal(response.statusCode, 204);
  t.equal(response.body, '');
  assertClearsCookies(t, response);

  for (const [label, token] of [
    ['caller', caller.accessToken],
    ['second session', second.accessToken],
    ['second session, rotated', rotated.accessToken],
    ['cookie session', third.access],
  ] as const) {
    assertError(t, await me(app, token), 401, 'TOKEN_REVOKED', label);
  }
  for (const [label, token] of [
    ['caller', caller.refreshToken],
    ['second session', rotated.refreshToken],
    ['cookie session', third.refresh],
  ] as const) {
    assertError(t, await refresh(app, token), 401, 'REFRESH_TOKEN_INVALID', `${label} refresh`);
  }
  for (const sessionId of [caller.sessionId, second.sessionId, third.sessionId]) {
    t.ok((await sessionRow(app, sessionId))?.revokedAt, `session ${sessionId} revoked`);
  }

  t.equal(await redis.get(redisKey(`{deny}:sub:${account.id}`)), '1', 'the minimum token version: the bumped one');
  await assertTtl(t, `{deny}:sub:${account.id}`, MAX_ACCESS_LIFE_MS, 'deny:sub');
  const events = await eventsOf(app, account.id, 'logged_out_all');
  t.equal(events.length, 1, 'one logged_out_all event');
  t.match(events[0]?.details, { sessions: 3 });

  await assertSessionLive(t, bystander, 'another user: ');
  t.equal((await refresh(app, bystander.refreshToken)).statusCode, 200, "another user's refresh token works");
  t.equal(await pttl(`{deny}:sub:${bystander.account.id}`), -2, 'no deny:sub entry for another user');
});

t.test('logout-all: a token issued after it is accepted, even within the same second', async (t) => {
  const account = await register(app);
  const caller = await login(app, account);
  clock.set(Math.floor(clock.now() / 1000) * 1000 + 1000 + 300);
  const notBefore = clock.now();
  t.equal((await logoutAll(bearer(caller.accessToken))).statusCode, 204);

  clock.advance(1);
  const fresh = await login(app, account);
  t.equal(claimsOf(fresh.accessToken).iat, Math.floor(notBefore / 1000), 'issued within the same second');
  t.equal((await me(app, fresh.accessToken)).statusCode, 200, 'the new login works');
  t.equal((await refresh(app, fresh.refreshToken)).statusCode, 200, 'and refreshes');

  // In a live session, only the token version decides (not the issue time, so no clock takes part).
  t.equal(claimsOf(fresh.accessToken).ver, 1, 'the new token carries the bumped version');
  const keysDir = config.keysDir;
  const base = {
    issuer: config.issuer,
    audience: config.audience,
    subject: account.id,
    sessionId: fresh.sessionId,
    nowMs: notBefore,
  };
  const before = await mintWithOurKey(keysDir, validClaims(base, { jti: uuidv7(notBefore + 5), ver: 0 }));
  const at = await mintWithOurKey(keysDir, validClaims(base, { jti: uuidv7(notBefore - 5), ver: 1 }));
  assertError(t, await me(app, before), 401, 'TOKEN_REVOKED', 'the old version, even if issued later');
  t.equal((await me(app, at)).statusCode, 200, 'the new version: accepted, even if issued earlier');
});

t.test('logout-all by cookie needs X-CSRF-Token', async (t) => {
  const session = await loginWithCookies(app, await register(app));
  assertError(t, await logoutAll({}, session.cookies), 403, 'CSRF_FAILED', 'no header');
  assertError(t, await logoutAll({ 'x-csrf-token': 'wrong' }, session.cookies), 403, 'CSRF_FAILED', 'wrong header');
  await assertSessionLive(t, { sessionId: session.sessionId, accessToken: session.access });
  clock.advance(1);
  const response = await logoutAll({ 'x-csrf-token': session.csrf }, session.cookies);
  t.equal(response.statusCode, 204, 'with the header');
  t.ok((await sessionRow(app, session.sessionId))?.revokedAt, 'session revoked');
  assertError(t, await me(app, session.access), 401, 'TOKEN_REVOKED', 'its access token');
});

t.test('logout-all needs a valid access token', async (t) => {
  assertError(t, await logoutAll({}), 401, 'TOKEN_MISSING', 'none');
  const session = await registerAndLogin(app);
  assertError(t, await logoutAll({ authorization: 'Bearer x.y.z' }), 401, 'TOKEN_INVALID', 'malformed');
  clock.advance(1);
  t.equal((await logoutAll(bearer(session.accessToken))).statusCode, 204);
  assertError(t, await logoutAll(bearer(session.accessToken)), 401, 'TOKEN_REVOKED', 'a second time');
  const { refreshToken } = session;
  assertError(t, await logoutAll({ ...bearer(refreshToken) }), 401, 'TOKEN_INVALID', 'a refresh token');
});
