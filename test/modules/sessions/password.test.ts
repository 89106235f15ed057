// POST /auth/password on real Postgres and Redis: the current session stays, every other one ends at once, the old
// password stops working; wrong current password, weak new password, CSRF for cookies, and two changes racing.
import t from 'tap';
import { buildTestApp } from '../../helpers/app.js';
import {
  assertError,
  bearer,
  codeOf,
  eventsOf,
  type Headers,
  login,
  loginRequest,
  loginWithCookies,
  me,
  refresh,
  register,
  registerAndLogin,
  STRONG_PASSWORD,
  sessionRow,
} from '../../helpers/session-flow.js';

const { app, config, redis, redisKey } = await buildTestApp(t);

const NEW_PASSWORD = 'a brand new passphrase 2024';

function changePassword(headers: Headers, payload: object, cookies?: Record<string, string>) {
  return app.inject({ method: 'POST', url: '/auth/password', headers, cookies, payload });
}

t.test('success: 204; this session stays, the others end at once, the old password stops working', async (t) => {
  const account = await register(app);
  const current = await login(app, account);
  const other = await login(app, account);
  const cookieSession = await loginWithCookies(app, account);
  const bystander = await registerAndLogin(app);
  const otherRotated = (await refresh(app, other.refreshToken)).json();

  const response = await changePassword(bearer(current.accessToken), {
    currentPassword: STRONG_PASSWORD,
    newPassword: NEW_PASSWORD,
  });
  t.equal(response.statusCode, 204);
  t.equal(response.body, '');

  t.equal((await me(app, current.accessToken)).statusCode, 200, "the current session's access token still works");
  t.equal((await sessionRow(app, current.sessionId))?.revokedAt, null, 'the current session is not revoked');
  t.equal((await refresh(app, current.refreshToken)).statusCode, 200, "and so does the current session's refresh");

  for (const [label, token] of [
    ['other session', other.accessToken],
    ['other session, rotated', otherRotated.accessToken],
    ['cookie session', cookieSession.access],
  ] as const) {
    assertError(t, await me(app, token), 401, 'TOKEN_REVOKED', label);
  }
  for (const [label, token] of [
    ['other session', otherRotated.refreshToken],
    ['cookie session', cookieSession.refresh],
  ] as const) {
    assertError(t, await refresh(app, token), 401, 'REFRESH_TOKEN_INVALID', `${label} refresh`);
  }
  const expected = (config.accessTokenTtl + config.clockTolerance) * 1000;
  for (const sessionId of [other.sessionId, cookieSession.sessionId]) {
    t.ok((await sessionRow(app, sessionId))?.revokedAt, 'revoked in Postgres');
    const ttl = await redis.pttl(redisKey(`{deny}:sid:${sessionId}`));
    t.ok(ttl <= expected && ttl > expected - 1000, `deny:sid TTL ${ttl} ≈ ${expected}`);
  }

  assertError(
    t,
    await loginRequest(app, account.email, STRONG_PASSWORD),
    401,
    'INVALID_CREDENTIALS',
    'old password login',
  );
  t.equal((await loginRequest(app, account.email, NEW_PASSWORD)).statusCode, 200, 'new password login');

  const events = await eventsOf(app, account.id, 'password_changed');
  t.equal(events.length, 1, 'one password_changed event');
  t.match(events[0]?.details, { sessionsRevoked: 2 });
  t.equal(events[0]?.ip, '127.0.0.1');

  t.equal((await me(app, bystander.accessToken)).statusCode, 200, 'another user is untouched');
  t.equal((await refresh(app, bystander.refreshToken)).statusCode, 200);
});

t.test('wrong current password: 401 INVALID_CREDENTIALS without invalid_token; nothing changes', async (t) => {
  const account = await register(app);
  const current = await login(app, account);
  const other = await login(app, account);
  const response = await changePassword(bearer(current.accessToken), {
    currentPassword: `${STRONG_PASSWORD}!`,
    newPassword: NEW_PASSWORD,
  });
  assertError(t, response, 401, 'INVALID_CREDENTIALS');
  t.notMatch(response.headers['www-authenticate'], /invalid_token/, 'the session is fine');
  t.equal((await me(app, current.accessToken)).statusCode, 200, 'the caller is still logged in');
  t.equal((await me(app, other.accessToken)).statusCode, 200, 'other sessions live on');
  t.equal((await loginRequest(app, account.email, STRONG_PASSWORD)).statusCode, 200, 'the old password still works');
  assertError(t, await loginRequest(app, account.email, NEW_PASSWORD), 401, 'INVALID_CREDENTIALS', 'new one not set');
  t.equal((await eventsOf(app, account.id, 'password_changed')).length, 0);
});

t.test('weak new password: 400 PASSWORD_TOO_WEAK; nothing changes', async (t) => {
  const account = await register(app);
  const current = await login(app, account);
  const other = await login(app, account);
  for (const newPassword of ['short', 'password', 'PASSWORD123', 'x'.repeat(129)]) {
    const response = await changePassword(bearer(current.accessToken), {
      currentPassword: STRONG_PASSWORD,
      newPassword,
    });
    assertError(t, response, 400, 'PASSWORD_TOO_WEAK', newPassword.slice(0, 12));
  }
  t.equal((await me(app, other.accessToken)).statusCode, 200, 'other sessions live on');
  t.equal((await loginRequest(app, account.email, STRONG_PASSWORD)).statusCode, 200, 'the old password still works');
});

t.test('bad bodies: 400 VALIDATION_FAILED', async (t) => {
  const { accessToken } = await registerAndLogin(app);
  const headers = bearer(accessToken);
  for (const payload of [
    {},
    { currentPassword: STRONG_PASSWORD },
    { newPassword: NEW_PASSWORD },
    { currentPassword: STRONG_PASSWORD, newPassword: NEW_PASSWORD, extra: true },
  ]) {
    assertError(t, await changePassword(headers, payload), 400, 'VALIDATION_FAILED', Object.keys(payload).join(','));
  }
});

t.test('needs a valid access token', async (t) => {
  const payload = { currentPassword: STRONG_PASSWORD, newPassword: NEW_PASSWORD };
  assertError(t, await changePassword({}, payload), 401, 'TOKEN_MISSING');
  const session = await registerAndLogin(app);
  t.equal(
    (await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(session.accessToken) })).statusCode,
    204,
  );
  assertError(t, await changePassword(bearer(session.accessToken), payload), 401, 'TOKEN_REVOKED', 'logged out');
  t.equal((await loginRequest(app, session.account.email, STRONG_PASSWORD)).statusCode, 200, 'password unchanged');
});

t.test('by cookie: needs X-CSRF-Token', async (t) => {
  const account = await register(app);
  const session = await loginWithCookies(app, account);
  const payload = { currentPassword: STRONG_PASSWORD, newPassword: NEW_PASSWORD };
  assertError(t, await changePassword({}, payload, session.cookies), 403, 'CSRF_FAILED', 'no header');
  assertError(t, await changePassword({ 'x-csrf-token': 'x' }, payload, session.cookies), 403, 'CSRF_FAILED', 'wrong');
  t.equal((await loginRequest(app, account.email, STRONG_PASSWORD)).statusCode, 200, 'password unchanged');
  const response = await changePassword({ 'x-csrf-token': session.csrf }, payload, session.cookies);
  t.equal(response.statusCode, 204, 'with the header');
  t.equal(
    (await app.inject({ method: 'GET', url: '/users/me', cookies: session.cookies })).statusCode,
    200,
    'the cookie session stays',
  );
});

t.test('two changes racing from one session: exactly one wins', async (t) => {
  const account = await register(app);
  const current = await login(app, account);
  const candidates = ['first racing passphrase', 'second racing passphrase'];
  const responses = await Promise.all(
    candidates.map((newPassword) =>
      changePassword(bearer(current.accessToken), { currentPassword: STRONG_PASSWORD, newPassword }),
    ),
  );
  const statuses = responses.map((response) => response.statusCode).sort();
  t.strictSame(statuses, [204, 401], 'one 204, one 401');
  const loser = responses.find((response) => response.statusCode === 401);
  t.equal(loser && codeOf(loser), 'INVALID_CREDENTIALS');
  const winner = candidates[responses.findIndex((response) => response.statusCode === 204)] as string;
  const other = candidates.find((candidate) => candidate !== winner) as string;
  t.equal((await loginRequest(app, account.email, winner)).statusCode, 200, "the winner's password is set");
  assertError(t, await loginRequest(app, account.email, other), 401, 'INVALID_CREDENTIALS', "the loser's is not");
  t.equal((await eventsOf(app, account.id, 'password_changed')).length, 1, 'one event');
});
