// GET /users/me/events on real Postgres and Redis: every action of the contract leaves its event, with the request's
// ip and user agent and the clock's time, listed newest first; pagination; privacy between users; and the events
// that outlive their user (user_deleted) or belong to no user (an unknown email) are checked in the database.
import { and, eq, isNull } from 'drizzle-orm';
import t from 'tap';
import { securityEvents } from '../../../src/db/schema.js';
import { deleteUser, loginAdmin, myEvents, putRoles } from '../../helpers/admin.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  assertError,
  bearer,
  claimsOf,
  eventsOf,
  type Headers,
  me,
  registerAndLogin,
  STRONG_PASSWORD,
  uniqueEmail,
} from '../../helpers/session-flow.js';

const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000);
const { app } = await buildTestApp(t, {
  clock,
  env: {
    // The verification mail's event arrives after the response; the accounts tests cover it.
    EMAIL_VERIFICATION: 'off',
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_LOGIN_FAILURES: '3',
    RATE_LIMIT_ACCOUNT_FAILURES: '1000',
    RATE_LIMIT_LOGIN_PER_IP: '1000',
    RATE_LIMIT_REGISTER_PER_IP: '1000',
    RATE_LIMIT_REFRESH_PER_IP: '1000',
  },
});

interface Expected {
  type: string;
  at: string;
  ip: string;
  userAgent: string;
}

/** Where a request comes from: its client address and user agent, distinct per action. */
function origin(host: number, label: string, token?: string): { remoteAddress: string; headers: Headers } {
  return {
    remoteAddress: `10.1.0.${host}`,
    headers: { 'user-agent': `events-test/${label}`, ...(token ? bearer(token) : {}) },
  };
}

/** Moves the clock a second on, so every event has its own instant (the list is ordered by time). */
function tick(): string {
  clock.advance(1000);
  return new Date(clock.now()).toISOString();
}

const email = uniqueEmail('events');
let password = STRONG_PASSWORD;
const expected: Expected[] = [];
const expect = (type: string, at: string, host: number, label: string) =>
  expected.push({ type, at, ip: `10.1.0.${host}`, userAgent: `events-test/${label}` });

async function loginFrom(host: number, label: string, pass = password) {
  return app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: pass }, ...origin(host, label) });
}

const admin = await loginAdmin(app);
let userId = '';
let lastToken = '';

t.test('every action records its event with the request ip and user agent', async (t) => {
  let at = tick();
  const registered = await app.inject({
    method: 'POST',
    url: '/auth/register',
    payload: { email, password },
    ...origin(1, 'register'),
  });
  t.equal(registered.statusCode, 201, 'registered');
  userId = registered.json().user.id;
  expect('registered', at, 1, 'register');

  at = tick();
  const s1 = await loginFrom(2, 'login-1');
  t.equal(s1.statusCode, 200, 'session 1');
  expect('login_succeeded', at, 2, 'login-1');

  at = tick();
  assertError(t, await loginFrom(3, 'wrong-password', 'not the password at all'), 401, 'INVALID_CREDENTIALS');
  expect('login_failed', at, 3, 'wrong-password');

  // A normal rotation records nothing; presenting the rotated token again past the grace interval is reuse.
  tick();
  const rotated = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    payload: { refreshToken: s1.json().refreshToken },
    ...origin(4, 'refresh'),
  });
  t.equal(rotated.statusCode, 200, 'rotation');
  clock.advance(11_000);
  at = tick();
  const reused = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    payload: { refreshToken: s1.json().refreshToken },
    ...origin(5, 'reuse'),
  });
  assertError(t, reused, 401, 'REFRESH_TOKEN_REUSED', 'reuse');
  expect('refresh_token_reused', at, 5, 'reuse');

  at = tick();
  const s2 = await loginFrom(6, 'login-2');
  expect('login_succeeded', at, 6, 'login-2');
  at = tick();
  const out = await app.inject({ method: 'POST', url: '/auth/logout', ...origin(7, 'logout', s2.json().accessToken) });
  t.equal(out.statusCode, 204, 'logout');
  expect('logged_out', at, 7, 'logout');

  at = tick();
  const s3 = await loginFrom(8, 'login-3');
  expect('login_succeeded', at, 8, 'login-3');
  at = tick();
  const s4 = await loginFrom(9, 'login-4');
  expect('login_succeeded', at, 9, 'login-4');
  const s4Token = s4.json().accessToken as string;

  at = tick();
  const revoked = await app.inject({
    method: 'DELETE',
    url: `/auth/sessions/${claimsOf(s3.json().accessToken).sid}`,
    ...origin(10, 'revoke-session', s4Token),
  });
  t.equal(revoked.statusCode, 204, 'session 3 revoked');
  expect('session_revoked', at, 10, 'revoke-session');

  at = tick();
  const newPassword = 'a brand new passphrase 42';
  const changed = await app.inject({
    method: 'POST',
    url: '/auth/password',
    payload: { currentPassword: password, newPassword },
    ...origin(11, 'password', s4Token),
  });
  t.equal(changed.statusCode, 204, 'password changed');
  password = newPassword;
  expect('password_changed', at, 11, 'password');

  at = tick();
  const all = await app.inject({ method: 'POST', url: '/auth/logout-all', ...origin(12, 'logout-all', s4Token) });
  t.equal(all.statusCode, 204, 'logout-all');
  expect('logged_out_all', at, 12, 'logout-all');

  // Recorded on the target's events, with the admin's request context.
  at = tick();
  const roles = await putRoles(app, admin.accessToken, userId, { roles: ['user', 'admin'] }, origin(13, 'roles'));
  t.equal(roles.statusCode, 200, 'roles changed');
  expect('roles_changed', at, 13, 'roles');

  // Three failures from one address, then the right password from it is refused (429), and recorded.
  for (let attempt = 1; attempt <= 3; attempt++) {
    at = tick();
    assertError(t, await loginFrom(14, `attacker-${attempt}`, 'guessing wrongly'), 401, 'INVALID_CREDENTIALS');
    expect('login_failed', at, 14, `attacker-${attempt}`);
  }
  at = tick();
  assertError(t, await loginFrom(14, 'throttled'), 429, 'RATE_LIMITED', 'throttled');
  expect('rate_limited', at, 14, 'throttled');

  at = tick();
  const s5 = await loginFrom(15, 'login-5');
  t.equal(s5.statusCode, 200, 'logs in from another address');
  expect('login_succeeded', at, 15, 'login-5');
  lastToken = s5.json().accessToken;

  const list = await myEvents(app, lastToken, { limit: '100' });
  t.equal(list.statusCode, 200, 'GET /users/me/events: 200');
  t.equal(list.json().nextCursor, null, 'one page');
  t.same(list.json().items, [...expected].reverse(), 'every event, newest first, with its time, ip and user agent');
  const types = new Set(list.json().items.map((item: { type: string }) => item.type));
  for (const type of [
    'registered',
    'login_succeeded',
    'login_failed',
    'refresh_token_reused',
    'logged_out',
    'logged_out_all',
    'session_revoked',
    'password_changed',
    'roles_changed',
    'rate_limited',
  ]) {
    t.ok(types.has(type), `${type} is listed`);
  }
  for (const item of list.json().items) {
    t.same(Object.keys(item).sort(), ['at', 'ip', 'type', 'userAgent'], 'items show type, at, ip, userAgent only');
  }
});

t.test('pagination with limit and cursor; bad values are 400', async (t) => {
  const walked: Expected[] = [];
  const sizes: number[] = [];
  let cursor: string | null = null;
  do {
    const response = await myEvents(app, lastToken, { limit: '5', ...(cursor ? { cursor } : {}) });
    t.equal(response.statusCode, 200, 'page: 200');
    walked.push(...response.json().items);
    sizes.push(response.json().items.length);
    cursor = response.json().nextCursor;
  } while (cursor !== null && sizes.length < 20);
  const full = [...expected].reverse();
  t.same(walked, full, 'pages of 5 walk the same list');
  const pages = Math.ceil(full.length / 5);
  t.equal(sizes.length, pages, `${pages} pages, the last with nextCursor null`);

  const firstPage = await myEvents(app, lastToken);
  t.equal(firstPage.json().items.length, Math.min(20, full.length), 'default limit 20');

  for (const [label, query] of [
    ['cursor=garbage', { cursor: 'garbage' }],
    ['cursor=base64 junk', { cursor: Buffer.from('[1,2]').toString('base64url') }],
    ['limit=0', { limit: '0' }],
    ['limit=101', { limit: '101' }],
    ['limit=abc', { limit: 'abc' }],
  ] as const) {
    assertError(t, await myEvents(app, lastToken, query), 400, 'VALIDATION_FAILED', label);
  }
  assertError(t, await app.inject({ method: 'GET', url: '/users/me/events' }), 401, 'TOKEN_MISSING', 'no token');
});

t.test("another user's events are not visible", async (t) => {
  tick();
  const other = await registerAndLogin(app);
  const list = await myEvents(app, other.accessToken, { limit: '100' });
  t.equal(list.statusCode, 200, '200');
  t.same(
    list
      .json()
      .items.map((item: { type: string }) => item.type)
      .sort(),
    ['login_succeeded', 'registered'],
    'only its own two events (same instant, so in either order)',
  );
  t.notOk(
    list.json().items.some((item: { userAgent: string | null }) => item.userAgent?.startsWith('events-test/')),
    "none of the first user's",
  );
  const adminList = await myEvents(app, admin.accessToken, { limit: '100' });
  t.notOk(
    adminList.json().items.some((item: { type: string }) => item.type === 'roles_changed'),
    "the admin's own list does not hold the change it made to someone else",
  );
});

t.test('a failed login for an unknown email is recorded without a user', async (t) => {
  const ghost = uniqueEmail('ghost');
  tick();
  const response = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: ghost, password: 'whatever it is' },
    ...origin(16, 'ghost'),
  });
  assertError(t, response, 401, 'INVALID_CREDENTIALS', 'unknown email');
  const rows = await app.db
    .select()
    .from(securityEvents)
    .where(and(isNull(securityEvents.userId), eq(securityEvents.userAgent, 'events-test/ghost')));
  t.equal(rows.length, 1, 'one login_failed row without a user id');
  t.equal(rows[0]?.type, 'login_failed', 'login_failed');
  t.equal(rows[0]?.ip, '10.1.0.16', 'with the ip');
  t.match(rows[0]?.details, { email: ghost }, 'naming the email tried');
});

t.test('user_deleted is recorded (the user is gone, so it is read from the database)', async (t) => {
  const at = tick();
  const response = await deleteUser(app, admin.accessToken, userId, origin(20, 'delete'));
  t.equal(response.statusCode, 204, 'deleted');
  assertError(t, await me(app, lastToken), 401, 'TOKEN_REVOKED', "the deleted user's token");
  const rows = await eventsOf(app, userId, 'user_deleted');
  t.equal(rows.length, 1, 'one user_deleted row');
  t.equal(rows[0]?.at.toISOString(), at, 'at the time of the deletion');
  t.equal(rows[0]?.ip, '10.1.0.20', "with the admin request's ip");
  t.equal(rows[0]?.userAgent, 'events-test/delete', 'and user agent');
  t.equal((await eventsOf(app, userId)).length, expected.length + 1, 'every earlier event is kept as well');
});
