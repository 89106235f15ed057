// GET /auth/revocations, the deny-list feed for resource servers: off (404) without REVOCATION_FEED_TOKEN; with one,
// its own Bearer check; jti, sid and sub entries from logout, logout-all, role changes and deletions, shown once
// settled (FEED_SETTLE_MS, on a TestClock), polled by cursor, and dropped once expired.
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { FEED_SETTLE_MS } from '../../../src/modules/revocations/revocations.routes.js';
import { deleteUser, loginAdmin, putRoles } from '../../helpers/admin.js';
import { buildTestApp } from '../../helpers/app.js';
import { TestClock } from '../../helpers/clock.js';
import {
  assertError,
  bearer,
  claimsOf,
  type Headers,
  type Response,
  registerAndLogin,
} from '../../helpers/session-flow.js';

interface Entry {
  type: 'jti' | 'sid' | 'sub';
  value: string;
  notBefore?: string;
  minVersion?: number;
  expiresAt: string;
}

const ACCESS_TTL_MS = 900_000;
const TOLERANCE_MS = 30_000;
const FEED_TOKEN = randomBytes(32).toString('base64url');

// Built before any subtest starts: tap ends the root test (and runs its teardowns) once its queue drains.
const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000 + 250);
const { app } = await buildTestApp(t, { clock, env: { REVOCATION_FEED_TOKEN: FEED_TOKEN } });
const admin = await loginAdmin(app);

t.test('without REVOCATION_FEED_TOKEN the feed does not exist: 404 NOT_FOUND', async (t) => {
  const { app } = await buildTestApp(t);
  assertError(t, await app.inject({ method: 'GET', url: '/auth/revocations' }), 404, 'NOT_FOUND', 'no credentials');
  assertError(
    t,
    await app.inject({ method: 'GET', url: '/auth/revocations', headers: bearer(FEED_TOKEN) }),
    404,
    'NOT_FOUND',
    'with a Bearer token',
  );
  const malformed = await app.inject({ method: 'GET', url: '/auth/revocations?since=abc' });
  t.equal(malformed.statusCode, 404, 'even with a malformed query: 404');
});

function poll(query: Record<string, string> = {}, headers: Headers = bearer(FEED_TOKEN)): Promise<Response> {
  return app.inject({ method: 'GET', url: '/auth/revocations', query, headers });
}

async function items(t: Test, query: Record<string, string> = {}): Promise<{ items: Entry[]; cursor: string }> {
  const response = await poll(query);
  t.equal(response.statusCode, 200, `poll ${JSON.stringify(query)}: 200`);
  return response.json();
}

const byValue = (entries: Entry[]) =>
  [...entries].sort((a, b) => `${a.type}${a.value}`.localeCompare(`${b.type}${b.value}`));

const settle = () => clock.advance(FEED_SETTLE_MS + 1);

t.test('the feed token: missing 401 TOKEN_MISSING, wrong 401 TOKEN_INVALID, right 200', async (t) => {
  assertError(t, await poll({}, {}), 401, 'TOKEN_MISSING', 'no Authorization');
  assertError(t, await poll({}, { authorization: `Basic ${FEED_TOKEN}` }), 401, 'TOKEN_MISSING', 'another scheme');
  assertError(t, await poll({}, bearer('x'.repeat(43))), 401, 'TOKEN_INVALID', 'a wrong token');
  assertError(t, await poll({}, bearer(FEED_TOKEN.slice(0, -1))), 401, 'TOKEN_INVALID', 'a prefix of the token');
  assertError(t, await poll({}, bearer(`${FEED_TOKEN}x`)), 401, 'TOKEN_INVALID', 'the token plus a character');
  assertError(t, await poll({}, bearer(admin.accessToken)), 401, 'TOKEN_INVALID', "an admin's access token");
  const response = await poll({}, { authorization: `bearer ${FEED_TOKEN}` });
  t.equal(response.statusCode, 200, 'the scheme is case-insensitive');
  t.same(response.json(), { items: [], cursor: '0' }, 'nothing revoked yet: no items, cursor 0');
  t.equal(response.headers['cache-control'], 'no-store', 'Cache-Control: no-store');
});

let afterLogout = '';

t.test('logout: jti and sid entries, listed only once settled', async (t) => {
  const session = await registerAndLogin(app);
  const claims = claimsOf(session.accessToken);
  clock.advance(100);
  const loggedOutAt = clock.now();
  const out = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(session.accessToken) });
  t.equal(out.statusCode, 204, 'logged out');

  t.same((await items(t)).items, [], 'not listed at once');
  clock.advance(FEED_SETTLE_MS - 1);
  t.same((await items(t)).items, [], `not listed ${FEED_SETTLE_MS - 1} ms later`);
  clock.advance(2);
  const feed = await items(t);
  t.same(
    feed.items,
    [
      { type: 'jti', value: claims.jti, expiresAt: new Date(claims.exp * 1000 + TOLERANCE_MS).toISOString() },
      {
        type: 'sid',
        value: claims.sid,
        expiresAt: new Date(loggedOutAt + ACCESS_TTL_MS + TOLERANCE_MS).toISOString(),
      },
    ],
    'settled: the jti and the sid, with expiry times, no notBefore',
  );
  for (const entry of feed.items) t.ok(Date.parse(entry.expiresAt) > clock.now(), `${entry.type}: expires later`);
  t.match(feed.cursor, /^\d+$/, 'a numeric cursor');
  t.not(feed.cursor, '0', 'that moved');
  afterLogout = feed.cursor;

  const again = await items(t, { since: afterLogout });
  t.same(again, { items: [], cursor: afterLogout }, 'polling from the cursor: nothing new, the same cursor');
});

let afterSubs = '';
let laterEntries: Entry[] = [];

t.test(
  'logout-all, a role change and a deletion: sub entries with notBefore and minVersion; the cursor returns only newer',
  async (t) => {
    const everywhere = await registerAndLogin(app);
    const promoted = await registerAndLogin(app);
    const deleted = await registerAndLogin(app);

    clock.advance(100);
    const logoutAllAt = clock.now();
    const all = await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(everywhere.accessToken) });
    t.equal(all.statusCode, 204, 'logout-all');
    settle();
    const first = await items(t, { since: afterLogout });
    const logoutAllEntry: Entry = {
      type: 'sub',
      value: everywhere.account.id,
      notBefore: new Date(logoutAllAt).toISOString(),
      minVersion: 1,
      expiresAt: new Date(logoutAllAt + ACCESS_TTL_MS + TOLERANCE_MS).toISOString(),
    };
    // Each ended session is deny-listed by sid as well.
    const logoutAllSid: Entry = {
      type: 'sid',
      value: everywhere.sessionId,
      expiresAt: new Date(logoutAllAt + ACCESS_TTL_MS + TOLERANCE_MS).toISOString(),
    };
    t.same(
      byValue(first.items),
      byValue([logoutAllEntry, logoutAllSid]),
      'logout-all: a sub entry with notBefore and the minimum version (and its session by sid), only they since the cursor',
    );

    clock.advance(100);
    const promotedAt = clock.now();
    const roles = await putRoles(app, admin.accessToken, promoted.account.id, { roles: ['user', 'admin'] });
    t.equal(roles.statusCode, 200, 'role change');
    clock.advance(100);
    const deletedAt = clock.now();
    t.equal((await deleteUser(app, admin.accessToken, deleted.account.id)).statusCode, 204, 'deletion');
    settle();
    const second = await items(t, { since: first.cursor });
    const changeEntries: Entry[] = [
      {
        type: 'sub',
        value: promoted.account.id,
        notBefore: new Date(promotedAt).toISOString(),
        minVersion: 1,
        expiresAt: new Date(promotedAt + ACCESS_TTL_MS + TOLERANCE_MS).toISOString(),
      },
      {
        type: 'sub',
        value: deleted.account.id,
        notBefore: new Date(deletedAt).toISOString(),
        minVersion: 1,
        expiresAt: new Date(deletedAt + ACCESS_TTL_MS + TOLERANCE_MS).toISOString(),
      },
    ];
    t.same(second.items, changeEntries, 'the role change and the deletion, only they, in order');
    t.ok(Number(second.cursor) > Number(first.cursor), 'the cursor moves forward');

    t.same(
      byValue((await items(t, { since: afterLogout })).items),
      byValue([logoutAllEntry, logoutAllSid, ...changeEntries]),
      'from the older cursor: all of them',
    );
    laterEntries = [...first.items, ...changeEntries];
    afterSubs = second.cursor;
    t.same((await items(t, { since: afterSubs })).items, [], 'and nothing after the newest cursor');
  },
);

t.test('limit pages through the feed, one cursor at a time', async (t) => {
  const everything = await items(t);
  t.equal(everything.items.length, 6, 'six live entries in all (jti, two sids, three subs)');
  t.same(everything.items.slice(2), laterEntries, 'in the order they were written');
  const walked: Entry[] = [];
  let since = '0';
  for (let page = 0; page < 10; page++) {
    const feed = await items(t, { since, limit: '2' });
    walked.push(...feed.items);
    since = feed.cursor;
    if (feed.items.length < 2) break;
  }
  t.same(walked, everything.items, 'pages of 2 walk the same entries');
  t.equal(since, afterSubs, 'ending at the newest cursor');
});

t.test('expired entries are not listed', async (t) => {
  const live = (await items(t)).items;
  const expiries = live.map((entry) => Date.parse(entry.expiresAt));
  const soonest = Math.min(...expiries);
  // The moment the first entry (the jti, whose token expired first) expires, it leaves the feed; the rest stay.
  clock.set(soonest);
  const partly = (await items(t)).items;
  t.same(
    partly,
    live.filter((entry) => Date.parse(entry.expiresAt) > soonest),
    'the expired entry is no longer listed, the others are',
  );
  t.ok(
    partly.length < live.length && partly.length > 0,
    `${live.length - partly.length} expired, ${partly.length} live`,
  );

  // Past every entry's expiry: only a fresh revocation is listed.
  clock.set(Math.max(...expiries) + 1);
  const session = await registerAndLogin(app);
  const out = await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(session.accessToken) });
  t.equal(out.statusCode, 204, 'a fresh revocation');
  settle();
  const feed = await items(t);
  t.same(
    feed.items.map((entry) => `${entry.type}:${entry.value}`).sort(),
    [`sid:${session.sessionId}`, `sub:${session.account.id}`].sort(),
    'only the live entries are listed',
  );
  t.equal((await items(t, { since: afterLogout })).items.length, 2, 'from an old cursor too');
});

t.test('bad query values are 400 VALIDATION_FAILED', async (t) => {
  for (const [label, query] of [
    ['since=abc', { since: 'abc' }],
    ['since=-1', { since: '-1' }],
    ['since=1.5', { since: '1.5' }],
    ['since of 19 digits', { since: '1'.repeat(19) }],
    ['since empty', { since: '' }],
    ['limit=0', { limit: '0' }],
    ['limit=1001', { limit: '1001' }],
    ['an unknown parameter', { cursor: '1' }],
  ] as const) {
    assertError(t, await poll(query), 400, 'VALIDATION_FAILED', label);
  }
});
