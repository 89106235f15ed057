// Behind PgBouncer 1.18 in transaction pooling, with DATABASE_PREPARED_STATEMENTS=false: the app's pool (10) is larger
// than PgBouncer's (2 server connections), so consecutive transactions of one client connection land on different
// backends. Migrations at boot (transaction-scoped lock), the session essentials and the row-locked rotation must
// all hold there.
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase } from '../helpers/database.js';
import { startPgBouncer } from '../helpers/pgbouncer.js';
import { testServers } from '../helpers/servers.js';
import {
  assertError,
  bearer,
  codeOf,
  login,
  me,
  refresh,
  register,
  registerAndLogin,
} from '../helpers/session-flow.js';

const servers = await testServers();
const database = await createTestDatabase(servers.databaseUrl);
t.teardown(() => database.drop());
const bouncer = await startPgBouncer(t, database.url, { poolSize: 2 });

// Grace 0: a second presentation of a rotated token is reuse at once, so "exactly one wins" is a plain count.
const { app } = await buildTestApp(t, {
  databaseUrl: bouncer.url(database.url),
  env: { DATABASE_PREPARED_STATEMENTS: 'false', REFRESH_REUSE_INTERVAL: '0' },
});

t.test('boots through PgBouncer: migrations applied, ready', async (t) => {
  const ready = await app.inject({ method: 'GET', url: '/health/ready' });
  t.equal(ready.statusCode, 200, ready.body);
  // A second boot on the same database: the migration lock is taken and released inside one transaction.
  const again = await buildTestApp(t, {
    databaseUrl: bouncer.url(database.url),
    env: { DATABASE_PREPARED_STATEMENTS: 'false' },
  });
  t.equal((await again.app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200, 'second instance up');
});

t.test('register, login, refresh rotation, logout', async (t) => {
  const session = await registerAndLogin(app);
  t.equal((await me(app, session.accessToken)).statusCode, 200, 'access token accepted');
  const rotated = await refresh(app, session.refreshToken);
  t.equal(rotated.statusCode, 200, 'refresh rotates');
  const next = rotated.json() as { accessToken: string; refreshToken: string };
  t.not(next.refreshToken, session.refreshToken, 'a new refresh token');
  const logout = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(next.accessToken) });
  t.equal(logout.statusCode, 204, 'logout');
  assertError(t, await me(app, next.accessToken), 401, 'TOKEN_REVOKED', 'access after logout');
  assertError(t, await refresh(app, next.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'refresh after logout');
});

t.test('reuse of a rotated refresh token revokes the session', async (t) => {
  const session = await registerAndLogin(app);
  const rotated = await refresh(app, session.refreshToken);
  t.equal(rotated.statusCode, 200);
  const child = rotated.json() as { accessToken: string; refreshToken: string };
  assertError(t, await refresh(app, session.refreshToken), 401, 'REFRESH_TOKEN_REUSED', 'replayed parent');
  assertError(t, await refresh(app, child.refreshToken), 401, 'REFRESH_TOKEN_INVALID', 'child revoked with it');
  assertError(t, await me(app, child.accessToken), 401, 'TOKEN_REVOKED', "the session's access token too");
});

t.test('concurrent refreshes of one token: exactly one chain wins, under connection sharing', async (t) => {
  const account = await register(app);
  for (let round = 0; round < 4; round++) {
    const session = await login(app, account);
    const answers = await Promise.all(Array.from({ length: 8 }, () => refresh(app, session.refreshToken)));
    const statuses = answers.map((answer) => `${answer.statusCode} ${codeOf(answer) ?? ''}`.trim()).join(', ');
    const children = new Set(
      answers.filter((answer) => answer.statusCode === 200).map((answer) => answer.json().refreshToken as string),
    );
    // Several 200s can only be the grace path handing out the one child again (a presentation whose clock reading
    // preceded the winner's use); never two children.
    t.equal(children.size, 1, `round ${round}: one child refresh token (${statuses})`);
    t.ok(
      answers.every(
        (answer) =>
          answer.statusCode === 200 || ['REFRESH_TOKEN_REUSED', 'REFRESH_TOKEN_INVALID'].includes(codeOf(answer) ?? ''),
      ),
      `round ${round}: the others 401 (reuse, then the revoked session), no 5xx`,
    );
    const reused = answers.some((answer) => codeOf(answer) === 'REFRESH_TOKEN_REUSED');
    const [child] = [...children];
    const next = await refresh(app, child ?? '');
    t.equal(next.statusCode, reused ? 401 : 200, `round ${round}: the child lives exactly when no reuse was seen`);
  }
});

t.test('many requests at once share two server connections without error', async (t) => {
  const sessions = await Promise.all(Array.from({ length: 5 }, () => registerAndLogin(app)));
  const answers = await Promise.all(
    Array.from({ length: 60 }, (_, i) => me(app, sessions[i % sessions.length]?.accessToken ?? '')),
  );
  t.strictSame(
    [...new Set(answers.map((answer) => answer.statusCode))],
    [200],
    'GET /users/me: all 200 (the hot, formerly named, statements)',
  );
  t.notMatch(bouncer.output(), /prepared statement/i, 'PgBouncer logged no prepared-statement trouble');
});
