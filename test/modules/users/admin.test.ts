// User administration end to end on real Postgres and Redis: GET /users keyset pagination, GET /users/:id visibility,
// PUT /users/:id/roles (validation, promotion and demotion that take effect on the very next request, same-second
// precision), the last-admin rule (also under concurrent mutual demotion and deletion), and DELETE /users/:id.
import pg from 'pg';
import t, { type Test } from 'tap';
import { createAdmin, deleteUser, getUser, listUsers, myEvents, putRoles } from '../../helpers/admin.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  type Account,
  assertError,
  bearer,
  claimsOf,
  type LoggedIn,
  login,
  loginRequest,
  me,
  type Response,
  refresh,
  register,
  registerAndLogin,
  uniqueEmail,
} from '../../helpers/session-flow.js';

// Whole seconds plus a known offset, so "the same second" is under the test's control.
const T0 = Math.floor(Date.now() / 1000) * 1000 + 100;
const clock = new TestClock(T0);
// No verification mail: its event would land among the ones these tests list, at its own time.
const { app, databaseUrl } = await buildTestApp(t, { clock, env: { EMAIL_VERIFICATION: 'off' } });
const sql = new pg.Client({ connectionString: databaseUrl });
await sql.connect();
t.teardown(() => sql.end());

/** Sets the app's clock to `seconds` whole seconds after T0's second, plus `ms`. */
const at = (seconds: number, ms = 100) => clock.set(Math.floor(T0 / 1000) * 1000 + seconds * 1000 + ms);

const firstAdminAccount = await createAdmin(app);
let admin: LoggedIn = await login(app, firstAdminAccount);

const UUID_UNKNOWN = '00000000-0000-4000-8000-000000000000';
const USER_KEYS = ['createdAt', 'email', 'emailVerified', 'id', 'mfaEnabled', 'name', 'roles', 'updatedAt'];

async function adminIds(): Promise<string[]> {
  const { rows } = await sql.query<{ id: string }>(`SELECT id FROM users WHERE 'admin' = ANY(roles) ORDER BY id`);
  return rows.map((row) => row.id);
}

async function rolesInDb(id: string): Promise<string[] | undefined> {
  const { rows } = await sql.query<{ roles: string[] }>('SELECT roles FROM users WHERE id = $1', [id]);
  return rows[0]?.roles;
}

const sorted = (roles: readonly string[]) => [...roles].sort();

t.test('GET /users: keyset pagination walks every user exactly once, oldest first by createdAt then id', async (t) => {
  // Four users in the same millisecond (ties broken by id, across a page boundary), one created later with an
  // earlier createdAt (so insertion order is not what is sorted on), and the others in sequence.
  at(1);
  const tied = await Promise.all([register(app), register(app), register(app), register(app)]);
  at(3);
  const third = await register(app);
  at(2);
  const second = await register(app);
  at(4);
  const fourth = await register(app);
  at(5);
  const expected = [firstAdminAccount.id, ...tied.map((account) => account.id).sort(), second.id, third.id, fourth.id];
  t.equal(new Set(expected).size, 8, 'eight distinct users');

  async function walk(limit: number): Promise<{ ids: string[]; pages: number[] }> {
    const ids: string[] = [];
    const pages: number[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 20; page++) {
      const response = await listUsers(app, admin.accessToken, {
        limit: String(limit),
        ...(cursor ? { cursor } : {}),
      });
      t.equal(response.statusCode, 200, `limit ${limit}, page ${page + 1}: 200`);
      const body = response.json() as { items: { id: string; createdAt: string }[]; nextCursor: string | null };
      t.ok(body.items.length <= limit, `limit ${limit}, page ${page + 1}: at most ${limit} items`);
      for (const item of body.items) t.same(Object.keys(item).sort(), USER_KEYS, 'public fields only');
      pages.push(body.items.length);
      ids.push(...body.items.map((item) => item.id));
      cursor = body.nextCursor;
      if (cursor === null) return { ids, pages };
      t.type(cursor, 'string', 'nextCursor is a string while more remain');
    }
    throw new Error('pagination did not end');
  }

  const byThree = await walk(3);
  t.same(byThree.pages, [3, 3, 2], 'limit 3: pages of 3, 3, 2; nextCursor null on the last');
  t.same(byThree.ids, expected, 'limit 3: every user exactly once, oldest first, ties by id');

  const byFour = await walk(4);
  t.same(byFour.pages, [4, 4], 'limit 4: exactly two pages, no empty third page');
  t.same(byFour.ids, expected, 'limit 4: the same order');

  const byOne = await walk(1);
  t.same(byOne.ids, expected, 'limit 1: the same order');

  const all = await listUsers(app, admin.accessToken);
  t.same(
    all.json().items.map((item: { id: string }) => item.id),
    expected,
    'default limit (20): all of them in one page',
  );
  t.equal(all.json().nextCursor, null, 'default limit: nextCursor null');

  const created = all.json().items.map((item: { createdAt: string }) => item.createdAt);
  t.same(created, [...created].sort(), 'createdAt ascending');
});

t.test('GET /users: bad limit or cursor values are 400 VALIDATION_FAILED', async (t) => {
  const b64 = (value: unknown) =>
    Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
  const bad: [string, Record<string, string>][] = [
    ['limit=0', { limit: '0' }],
    ['limit=101', { limit: '101' }],
    ['limit=abc', { limit: 'abc' }],
    ['limit=-1', { limit: '-1' }],
    ['limit=1.5', { limit: '1.5' }],
    ['cursor=garbage', { cursor: 'garbage' }],
    ['cursor=base64 of junk', { cursor: b64('junk that is not json') }],
    ['cursor=base64 of an object', { cursor: b64({ at: new Date().toISOString(), id: UUID_UNKNOWN }) }],
    ['cursor=bad date', { cursor: b64(['not a date', UUID_UNKNOWN]) }],
    ['cursor=bad id', { cursor: b64([new Date().toISOString(), 'not-a-uuid']) }],
    ['cursor=three elements', { cursor: b64([new Date().toISOString(), UUID_UNKNOWN, 'x']) }],
    ['cursor=empty', { cursor: '' }],
    ['cursor=too long', { cursor: 'A'.repeat(300) }],
    ['an unknown parameter', { offset: '3' }],
  ];
  for (const [label, query] of bad) {
    assertError(t, await listUsers(app, admin.accessToken, query), 400, 'VALIDATION_FAILED', label);
  }
  t.equal((await listUsers(app, admin.accessToken, { limit: '100' })).statusCode, 200, 'limit=100 is fine');
  t.equal((await listUsers(app, admin.accessToken, { limit: '1' })).statusCode, 200, 'limit=1 is fine');
});

t.test('GET /users/:id: self without permission, another 403, unknown 404, malformed 400', async (t) => {
  const alice = await registerAndLogin(app);
  const bob = await register(app);

  const self = await getUser(app, alice.accessToken, alice.account.id);
  t.equal(self.statusCode, 200, 'a user reads itself: 200');
  t.equal(self.json().user.id, alice.account.id, 'its own record');
  t.same(Object.keys(self.json().user).sort(), USER_KEYS, 'public fields only');

  const other = await getUser(app, alice.accessToken, bob.id);
  assertError(t, other, 403, 'FORBIDDEN', "a user reads another's record");

  const asAdmin = await getUser(app, admin.accessToken, bob.id);
  t.equal(asAdmin.statusCode, 200, 'an admin reads anyone: 200');
  t.equal(asAdmin.json().user.email, bob.email, 'the right record');

  assertError(t, await getUser(app, admin.accessToken, UUID_UNKNOWN), 404, 'NOT_FOUND', 'unknown uuid as admin');
  assertError(t, await getUser(app, admin.accessToken, 'not-a-uuid'), 400, 'VALIDATION_FAILED', 'malformed id');
  assertError(t, await getUser(app, admin.accessToken, '123'), 400, 'VALIDATION_FAILED', 'numeric id');
  assertError(t, await getUser(app, alice.accessToken, 'not-a-uuid'), 400, 'VALIDATION_FAILED', 'malformed, user');
  // ajv's `uuid` format also takes a `urn:uuid:` prefix, which Postgres does not: still a malformed id.
  const urn = `urn:uuid:${bob.id}`;
  for (const [label, response] of [
    ['GET', await getUser(app, admin.accessToken, urn)],
    ['PUT roles', await putRoles(app, admin.accessToken, urn, { roles: ['user'] })],
    ['DELETE', await deleteUser(app, admin.accessToken, urn)],
  ] as const) {
    t.equal(response.statusCode, 400, `${label} /users/urn:uuid:…: 400`);
    t.equal(response.json().code, 'VALIDATION_FAILED', `${label} /users/urn:uuid:…: VALIDATION_FAILED`);
  }
  // The same id in capitals is still the caller itself.
  const upper = await getUser(app, alice.accessToken, alice.account.id.toUpperCase());
  t.equal(upper.statusCode, 200, 'a user reads itself by its id in capitals: 200');
});

t.test('PUT /users/:id/roles: the body must be a non-empty array of distinct known roles', async (t) => {
  const target = await registerAndLogin(app);
  const bad: [string, unknown][] = [
    ['empty array', { roles: [] }],
    ['duplicates', { roles: ['user', 'user'] }],
    ['unknown role', { roles: ['superuser'] }],
    ['unknown among known', { roles: ['user', 'root'] }],
    ['extra property', { roles: ['user'], extra: true }],
    ['missing roles', {}],
    ['a string, not an array', { roles: 'admin' }],
    ['a non-string role', { roles: [1] }],
    ['null', { roles: null }],
  ];
  for (const [label, payload] of bad) {
    assertError(t, await putRoles(app, admin.accessToken, target.account.id, payload), 400, 'VALIDATION_FAILED', label);
  }
  const text = await app.inject({
    method: 'PUT',
    url: `/users/${target.account.id}/roles`,
    headers: { ...bearer(admin.accessToken), 'content-type': 'text/plain' },
    payload: 'admin',
  });
  assertError(t, text, 415, 'UNSUPPORTED_MEDIA_TYPE', 'not JSON');
  assertError(
    t,
    await putRoles(app, admin.accessToken, 'not-a-uuid', { roles: ['user'] }),
    400,
    'VALIDATION_FAILED',
    'malformed id',
  );
  assertError(
    t,
    await putRoles(app, admin.accessToken, UUID_UNKNOWN, { roles: ['user'] }),
    404,
    'NOT_FOUND',
    'unknown id',
  );
  t.same(await rolesInDb(target.account.id), ['user'], 'roles unchanged');
  t.equal((await me(app, target.accessToken)).statusCode, 200, "a refused change leaves the target's token valid");
});

t.test('the last admin can be neither demoted (even by itself) nor deleted', async (t) => {
  t.same(await adminIds(), [admin.account.id], 'one admin');
  assertError(
    t,
    await putRoles(app, admin.accessToken, admin.account.id, { roles: ['user'] }),
    409,
    'LAST_ADMIN',
    'demoting oneself, the only admin',
  );
  assertError(t, await deleteUser(app, admin.accessToken, admin.account.id), 409, 'LAST_ADMIN', 'deleting oneself');
  t.same(sorted((await rolesInDb(admin.account.id)) ?? []), ['admin', 'user'], 'still an admin');
  t.equal((await me(app, admin.accessToken)).statusCode, 200, "a refused change does not revoke the admin's token");
  t.equal((await listUsers(app, admin.accessToken)).statusCode, 200, 'and it still has its permissions');
});

t.test('promotion: the old token is revoked on the very next request; a refresh carries the new roles', async (t) => {
  at(10, 100);
  const user = await registerAndLogin(app);
  t.same(claimsOf(user.accessToken).roles, ['user'], 'a user token');
  assertError(t, await listUsers(app, user.accessToken), 403, 'FORBIDDEN', 'before: no users:read');

  // Same second as the login, a few milliseconds later: a whole-second comparison would miss this.
  at(10, 200);
  const change = await putRoles(app, admin.accessToken, user.account.id, { roles: ['user', 'admin'] });
  t.equal(change.statusCode, 200, 'promoted: 200');
  t.same(sorted(change.json().user.roles), ['admin', 'user'], 'the response shows the new roles');
  t.same(sorted((await rolesInDb(user.account.id)) ?? []), ['admin', 'user'], 'stored');

  at(10, 300);
  assertError(t, await me(app, user.accessToken), 401, 'TOKEN_REVOKED', 'the old token, very next request');
  assertError(t, await listUsers(app, user.accessToken), 401, 'TOKEN_REVOKED', 'the old token on GET /users');

  // Minted in the same second as the change, after it: accepted.
  const refreshed = await refresh(app, user.refreshToken);
  t.equal(refreshed.statusCode, 200, 'refresh: 200');
  const token = refreshed.json().accessToken as string;
  t.same(sorted(claimsOf(token).roles), ['admin', 'user'], "the new token's roles include admin");
  t.same(sorted(refreshed.json().user.roles), ['admin', 'user'], 'the response user too');
  t.equal(Math.floor(claimsOf(token).iat), Math.floor(clock.now() / 1000), 'issued in the same second as the change');
  t.equal((await me(app, token)).statusCode, 200, 'the new token is accepted');
  t.equal((await listUsers(app, token)).statusCode, 200, 'and can GET /users');
  // Leave one admin, for the tests below.
  at(11);
  t.equal((await putRoles(app, admin.accessToken, user.account.id, { roles: ['user'] })).statusCode, 200, 'cleanup');
});

t.test('demotion: the old admin token is revoked at once; a refresh gives roles [user] and 403', async (t) => {
  at(20, 100);
  const account = await register(app);
  at(20, 150);
  t.equal((await putRoles(app, admin.accessToken, account.id, { roles: ['user', 'admin'] })).statusCode, 200);
  at(20, 200);
  const second = await login(app, account);
  t.same(sorted(claimsOf(second.accessToken).roles), ['admin', 'user'], 'an admin token');
  t.equal((await listUsers(app, second.accessToken)).statusCode, 200, 'before: GET /users 200');

  at(20, 300);
  const change = await putRoles(app, admin.accessToken, account.id, { roles: ['user'] });
  t.equal(change.statusCode, 200, 'demoted: 200');
  t.same(change.json().user.roles, ['user'], 'the response shows roles [user]');

  at(20, 301);
  assertError(t, await listUsers(app, second.accessToken), 401, 'TOKEN_REVOKED', 'the old admin token on GET /users');
  assertError(t, await me(app, second.accessToken), 401, 'TOKEN_REVOKED', 'the old admin token on /users/me');

  const refreshed = await refresh(app, second.refreshToken);
  t.equal(refreshed.statusCode, 200, 'refresh: 200');
  const token = refreshed.json().accessToken as string;
  t.same(claimsOf(token).roles, ['user'], 'the new token says [user]');
  t.equal((await me(app, token)).statusCode, 200, 'the new token is accepted');
  assertError(t, await listUsers(app, token), 403, 'FORBIDDEN', 'GET /users with the new token');
  assertError(
    t,
    await putRoles(app, token, admin.account.id, { roles: ['user'] }),
    403,
    'FORBIDDEN',
    'and it cannot manage users any more',
  );
});

t.test('same-second rule: a token minted right after a change, in the same millisecond, is accepted', async (t) => {
  at(30, 500);
  const user = await registerAndLogin(app);
  at(30, 600);
  t.equal((await putRoles(app, admin.accessToken, user.account.id, { roles: ['user', 'admin'] })).statusCode, 200);
  // No clock movement at all: the refresh happens in the very millisecond of the change.
  const refreshed = await refresh(app, user.refreshToken);
  t.equal(refreshed.statusCode, 200, 'refresh: 200');
  const token = refreshed.json().accessToken as string;
  t.equal((await me(app, token)).statusCode, 200, 'accepted');
  t.equal((await listUsers(app, token)).statusCode, 200, 'with the new permissions');
  assertError(t, await me(app, user.accessToken), 401, 'TOKEN_REVOKED', 'while the token from 100 ms earlier is not');
  // Leave one admin, for the tests below.
  t.equal((await putRoles(app, admin.accessToken, user.account.id, { roles: ['user'] })).statusCode, 200);
});

/** Makes `account` an admin again (through the API, by `by`) and logs it in afresh. */
async function promoteAndLogin(by: LoggedIn, account: Account): Promise<LoggedIn> {
  const response = await putRoles(app, by.accessToken, account.id, { roles: ['user', 'admin'] });
  if (response.statusCode !== 200) throw new Error(`promotion failed: ${response.statusCode} ${response.body}`);
  clock.advance(5);
  return login(app, account);
}

function assertNoServerError(t: Test, responses: Response[], label: string) {
  t.ok(
    responses.every((response) => response.statusCode < 500),
    `${label}: no 5xx (${responses.map((r) => r.statusCode).join(', ')})`,
  );
}

t.test('two admins demoting each other at once: exactly one succeeds, one admin remains', async (t) => {
  at(40);
  t.same(await adminIds(), [admin.account.id], 'one admin to start');
  const otherAccount = await register(app);
  let other = await promoteAndLogin(admin, otherAccount);
  for (let round = 1; round <= 4; round++) {
    t.same(await adminIds(), [admin.account.id, other.account.id].sort(), `round ${round}: two admins`);
    clock.advance(10);
    const [byAdmin, byOther] = await Promise.all([
      putRoles(app, admin.accessToken, other.account.id, { roles: ['user'] }),
      putRoles(app, other.accessToken, admin.account.id, { roles: ['user'] }),
    ]);
    const responses = [byAdmin, byOther];
    assertNoServerError(t, responses, `round ${round}`);
    t.same(responses.map((response) => response.statusCode).sort(), [200, 409], `round ${round}: one 200, one 409`);
    const loser = responses.find((response) => response.statusCode !== 200);
    if (loser?.statusCode === 409) assertError(t, loser, 409, 'LAST_ADMIN', `round ${round}: the refused one`);
    const admins = await adminIds();
    t.equal(admins.length, 1, `round ${round}: exactly one admin remains`);
    // The winner keeps its token; the demoted one's token is revoked.
    const [winner, demoted] = byAdmin.statusCode === 200 ? [admin, other] : [other, admin];
    t.same(admins, [winner.account.id], `round ${round}: the winner is the admin`);
    clock.advance(10);
    assertError(t, await me(app, demoted.accessToken), 401, 'TOKEN_REVOKED', `round ${round}: demoted token`);
    t.equal((await listUsers(app, winner.accessToken)).statusCode, 200, `round ${round}: winner still an admin`);
    admin = winner;
    other = await promoteAndLogin(winner, demoted.account);
  }

  // The same race with deletions.
  clock.advance(10);
  const [delByAdmin, delByOther] = await Promise.all([
    deleteUser(app, admin.accessToken, other.account.id),
    deleteUser(app, other.accessToken, admin.account.id),
  ]);
  assertNoServerError(t, [delByAdmin, delByOther], 'mutual deletion');
  t.same([delByAdmin.statusCode, delByOther.statusCode].sort(), [204, 409], 'mutual deletion: one 204, one 409');
  const survivor = delByAdmin.statusCode === 204 ? admin : other;
  t.same(await adminIds(), [survivor.account.id], 'mutual deletion: the survivor is the only admin');
  admin = survivor;
  clock.advance(10);
  t.equal((await listUsers(app, admin.accessToken)).statusCode, 200, 'the survivor still works');
});

t.test("DELETE /users/:id: the user's tokens and login stop working; its events stay; the email is free", async (t) => {
  at(60);
  const email = uniqueEmail('doomed');
  const doomed = await registerAndLogin(app, { email });
  const oldId = doomed.account.id;
  at(60, 500);
  const response = await deleteUser(app, admin.accessToken, oldId, { headers: { 'user-agent': 'admin-console/1.0' } });
  t.equal(response.statusCode, 204, '204');
  t.equal(response.body, '', 'no body');

  at(60, 501);
  assertError(t, await me(app, doomed.accessToken), 401, 'TOKEN_REVOKED', 'its access token');
  assertError(t, await refresh(app, doomed.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'its refresh token');
  assertError(t, await loginRequest(app, email, doomed.account.password), 401, 'INVALID_CREDENTIALS', 'its login');
  assertError(t, await getUser(app, admin.accessToken, oldId), 404, 'NOT_FOUND', 'GET /users/:id');
  assertError(t, await deleteUser(app, admin.accessToken, oldId), 404, 'NOT_FOUND', 'deleting it again');
  assertError(t, await deleteUser(app, admin.accessToken, UUID_UNKNOWN), 404, 'NOT_FOUND', 'an unknown id');
  assertError(t, await deleteUser(app, admin.accessToken, 'nope'), 400, 'VALIDATION_FAILED', 'a malformed id');

  const { rows: userRows } = await sql.query('SELECT 1 FROM users WHERE id = $1', [oldId]);
  t.equal(userRows.length, 0, 'the user row is gone');
  const { rows: sessionRows } = await sql.query('SELECT 1 FROM sessions WHERE user_id = $1', [oldId]);
  t.equal(sessionRows.length, 0, 'its sessions are gone');
  const { rows: events } = await sql.query<{ type: string; user_agent: string | null; details: { by?: string } }>(
    'SELECT type, user_agent, details FROM security_events WHERE user_id = $1 ORDER BY at, type',
    [oldId],
  );
  t.same(
    events.map((event) => event.type).sort(),
    ['login_succeeded', 'registered', 'user_deleted'],
    'its security events are kept, with the deletion',
  );
  const deletion = events.find((event) => event.type === 'user_deleted');
  t.equal(deletion?.user_agent, 'admin-console/1.0', "the deletion carries the admin's user agent");
  t.equal(deletion?.details?.by, admin.account.id, 'and names the admin');

  at(61);
  const again = await app.inject({
    method: 'POST',
    url: '/auth/register',
    payload: { email, password: doomed.account.password },
  });
  t.equal(again.statusCode, 201, 'the email can register again');
  const newId = again.json().user.id as string;
  t.not(newId, oldId, 'as a new user');
  clock.advance(1);
  const fresh = await login(app, { id: newId, email, password: doomed.account.password });
  t.equal((await me(app, fresh.accessToken)).statusCode, 200, 'the new account works');
  const mine = await myEvents(app, fresh.accessToken);
  t.same(
    mine.json().items.map((item: { type: string }) => item.type),
    ['login_succeeded', 'registered'],
    "the new account sees none of the old account's events",
  );
  assertError(t, await me(app, doomed.accessToken), 401, 'TOKEN_REVOKED', 'the old token stays dead');
});
