// bench/seed.ts on real Postgres, at a small scale: the seeded rows are consistent and realistic, the rows already
// there stay as they were, every index comes back, a seeded user logs in and refreshes, the hot queries are planned
// on indexes, and housekeeping leaves no dead row behind.
import pg from 'pg';
import t from 'tap';
import {
  checkHousekeeping,
  explainHotQueries,
  SEEDED_PASSWORD,
  seededUserEmail,
  seedRows,
  seqScans,
} from '../../bench/seed.js';
import { migrateDatabase, openPostgres } from '../../src/db/client.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase } from '../helpers/database.js';
import { testServers } from '../helpers/servers.js';
import { login, me, refresh, registerAndLogin } from '../helpers/session-flow.js';

const { app, config, databaseUrl } = await buildTestApp(t);
const counts = { users: 2_000, sessions: 6_000, refreshTokens: 20_000 };

const client = new pg.Client({ connectionString: databaseUrl });
await client.connect();
t.teardown(() => client.end());
const one = async <Row>(text: string, values: unknown[] = []) => (await client.query(text, values)).rows[0] as Row;
const count = async (text: string, values: unknown[] = []) =>
  Number((await one<{ count: string }>(`SELECT count(*) FROM ${text}`, values)).count);

const INDEXES = `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname`;
const realRows = async (userId: string) => ({
  user: await one('SELECT * FROM users WHERE id = $1', [userId]),
  sessions: (await client.query('SELECT * FROM sessions WHERE user_id = $1 ORDER BY id', [userId])).rows,
  tokens: (
    await client.query(
      'SELECT rt.* FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id WHERE s.user_id = $1 ORDER BY rt.id',
      [userId],
    )
  ).rows,
});

const real = await registerAndLogin(app);
const realBefore = await realRows(real.account.id);
const indexesBefore = (await client.query(INDEXES)).rows;
const lines: string[] = [];
await seedRows(databaseUrl, counts, (line) => lines.push(line), { config });

t.test('loads the counts asked for, beside the rows already there, which stay as they were', async (t) => {
  t.equal(await count('users'), counts.users + 1);
  t.equal(await count('sessions'), counts.sessions + realBefore.sessions.length);
  t.equal(await count('refresh_tokens'), counts.refreshTokens + realBefore.tokens.length);
  t.ok((await count('security_events')) > counts.users + counts.sessions, 'security events too');
  t.same(await realRows(real.account.id), realBefore);
  t.same((await client.query(INDEXES)).rows, indexesBefore, 'every index rebuilt as it was');
  t.match(lines.at(-1), /^seed: vacuumed and analysed/);
});

t.test('rows are consistent: references, rotation chains, lifetimes', async (t) => {
  t.equal(await count('sessions s LEFT JOIN users u ON u.id = s.user_id WHERE u.id IS NULL'), 0);
  t.equal(await count('refresh_tokens rt LEFT JOIN sessions s ON s.id = rt.session_id WHERE s.id IS NULL'), 0);
  const brokenChains = `refresh_tokens c LEFT JOIN refresh_tokens p ON p.id = c.parent_id
    WHERE c.parent_id IS NOT NULL AND (p.id IS NULL OR p.session_id <> c.session_id OR p.used_at <> c.issued_at)`;
  t.equal(await count(brokenChains), 0, 'each child names its parent, used when the child was issued');
  const maxAge = [`${config.sessionMaxAge} seconds`];
  t.equal(await count('sessions WHERE expires_at <> created_at + $1::interval', maxAge), 0, 'sessions live max-age');
  const outliving = `refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
    WHERE rt.expires_at > s.expires_at OR rt.issued_at < s.created_at OR rt.issued_at > now()
       OR rt.revoked_at IS DISTINCT FROM s.revoked_at`;
  t.equal(await count(outliving), 0, 'no token outlives its session; revoked with it');
  t.equal(await count('sessions s JOIN users u ON u.id = s.user_id WHERE s.created_at < u.created_at'), 0);
  const revocations = 'revocations r LEFT JOIN sessions s ON s.id::text = r.value WHERE s.revoked_at IS NULL';
  t.equal(await count(revocations), 0, 'a revocation per revoked session');
  const events = `security_events e LEFT JOIN sessions s ON s.id::text = e.details->>'sessionId'
    WHERE e.details ? 'sessionId' AND s.user_id IS DISTINCT FROM e.user_id`;
  t.equal(await count(events), 0, "events name their user's sessions");
  t.equal(await count("users WHERE email <> lower(email) OR roles <> '{user}' OR token_version <> 0"), 0);
});

t.test('a realistic mix: live, expired and revoked sessions; mostly used tokens, some live', async (t) => {
  const live = await count('sessions WHERE revoked_at IS NULL AND expires_at > now()');
  const expired = await count('sessions WHERE revoked_at IS NULL AND expires_at <= now()');
  const revoked = await count('sessions WHERE revoked_at IS NOT NULL');
  t.ok(live > counts.sessions * 0.5 && expired > counts.sessions * 0.15 && revoked > counts.sessions * 0.1, 'mix');
  const used = await count('refresh_tokens WHERE used_at IS NOT NULL');
  const liveTokens = await count('refresh_tokens WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > now()');
  t.ok(used > counts.refreshTokens * 0.6, 'most tokens were rotated');
  t.ok(liveTokens > 0 && liveTokens < counts.refreshTokens * 0.25, 'a few are live');
});

t.test('a seeded user logs in with the seeded password, refreshes and reads itself', async (t) => {
  const email = seededUserEmail(1_234);
  const seeded = await login(app, { id: '', email, password: SEEDED_PASSWORD });
  const refreshed = await refresh(app, seeded.refreshToken);
  t.equal(refreshed.statusCode, 200);
  const self = await me(app, refreshed.json().accessToken);
  t.equal(self.statusCode, 200);
  t.equal(self.json().user.email, email);
});

t.test('a second seed of the same database is refused', async (t) => {
  await t.rejects(
    seedRows(databaseUrl, { users: 1, sessions: 1, refreshTokens: 1 }, () => undefined),
    /already/,
  );
  t.same((await client.query(INDEXES)).rows, indexesBefore, 'and leaves the indexes alone');
});

t.test('hot queries are planned on indexes; nothing they write stays', async (t) => {
  const tokensBefore = await count('refresh_tokens');
  const plans = await explainHotQueries(databaseUrl);
  const names = plans.map((plan) => plan.name);
  for (const expected of [
    '/users/me: users by id, one batch',
    'login: credentials by email',
    "refresh (cookie): the token's session",
  ]) {
    t.ok(names.includes(expected), expected);
  }
  t.ok(names.includes('housekeeping: pruneSessions #2'), 'a step with two statements gives two plans');
  // The function call, then (auto_explain) each statement it ran, foreign-key checks included.
  const rotation = plans.filter((plan) => plan.name.startsWith('refresh: rotate, first use #'));
  const ran = rotation.slice(1).map((plan) => plan.plan);
  for (const statement of [
    'SELECT u.id,',
    'UPDATE sessions s',
    'SELECT t.id,',
    'UPDATE refresh_tokens t',
    'INSERT INTO refresh_tokens',
  ]) {
    t.ok(
      ran.some((plan) => plan.startsWith(statement)),
      `the rotation's plans show ${statement}`,
    );
  }
  for (const { name, plan } of plans) {
    t.match(plan, /\(actual time=/, `${name}: EXPLAIN ANALYZE`);
    if (!name.startsWith('housekeeping')) t.same(seqScans(plan), [], `${name}: no sequential scan`);
  }
  t.equal(await count('refresh_tokens'), tokensBefore, 'rolled back');
});

t.test('housekeeping deletes every dead row and keeps the live ones', async (t) => {
  const live = await count('sessions WHERE revoked_at IS NULL AND expires_at > now()');
  const report = await checkHousekeeping(databaseUrl, () => undefined);
  t.notOk(report.service?.error, 'the service prune succeeds at this size');
  t.notOk(report.batched, 'so the batched one does not run');
  t.ok(report.before.expiredSessions > 0 && report.before.expiredRefreshTokens > 0);
  t.same(report.after, { expiredSessions: 0, revokedSessions: 0, expiredRefreshTokens: 0, expiredRevocations: 0 });
  t.equal(await count('sessions WHERE revoked_at IS NULL AND expires_at > now()'), live);
});

t.test('the proposed batched prune deletes the same rows', async (t) => {
  const database = await createTestDatabase((await testServers()).databaseUrl);
  t.teardown(() => database.drop());
  const handle = await openPostgres(database.url, () => undefined);
  await migrateDatabase(handle, database.url);
  await handle.close();
  await seedRows(database.url, { users: 500, sessions: 1_500, refreshTokens: 5_000 }, () => undefined, {
    config,
    securityEvents: false,
  });
  const report = await checkHousekeeping(database.url, () => undefined, { service: false });
  t.ok(
    report.batched?.every((batch) => batch.batches >= 1),
    'every batched delete ran',
  );
  t.same(report.after, { expiredSessions: 0, revokedSessions: 0, expiredRefreshTokens: 0, expiredRevocations: 0 });
  const plans = report.steadyPlans.map((plan) => plan.plan).join('\n');
  t.match(plans, /sessions_revoked_at_idx/, 'the next prune finds revoked sessions on their index');
});
