// `npm run create-admin` as a real process: its exit codes and messages, a new admin that can log in through the
// app on the same database, promotion of an existing user with its password left alone, and the embedded database.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { and, eq } from 'drizzle-orm';
import t from 'tap';
import { securityEvents } from '../../src/db/schema.js';
import { listUsers } from '../helpers/admin.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase } from '../helpers/database.js';
import { compiledEntry } from '../helpers/server-process.js';
import { testServers } from '../helpers/servers.js';
import { assertError, claimsOf, loginRequest, register, uniqueEmail } from '../helpers/session-flow.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ADMIN_PASSWORD = 'a long and unusual admin passphrase';

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the script as `npm run create-admin` does, with only the environment given (plus PATH and HOME). */
async function createAdmin(args: string[], env: Record<string, string>): Promise<Outcome> {
  const entry = await compiledEntry('src/scripts/create-admin.ts');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [entry, ...args],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), LOG_LEVEL: 'warn', ...env },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const servers = await testServers();
const database = await createTestDatabase(servers.databaseUrl);
t.teardown(() => database.drop());
const onPostgres = { DATABASE_URL: database.url };

t.test('a new admin needs ADMIN_PASSWORD: exit 1 with a clear message', async (t) => {
  const result = await createAdmin(['--email', uniqueEmail('nopass')], onPostgres);
  t.equal(result.code, 1, 'exit 1');
  t.match(result.stderr, /ADMIN_PASSWORD is required/, 'names ADMIN_PASSWORD');
  t.match(result.stderr, /usage: ADMIN_PASSWORD=\.\.\. npm run create-admin -- --email <email>/, 'shows the usage');
  t.equal(result.stdout, '', 'nothing on stdout');
});

t.test('bad arguments and weak passwords: exit 1, naming the problem', async (t) => {
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['a common password', ['--email', uniqueEmail('weak')], { ADMIN_PASSWORD: 'password' }, /too common/],
    ['an empty password', ['--email', uniqueEmail('empty')], { ADMIN_PASSWORD: '' }, /ADMIN_PASSWORD is required/],
    ['no --email', [], { ADMIN_PASSWORD }, /a valid --email is required/],
    ['a bad --email', ['--email', 'not-an-email'], { ADMIN_PASSWORD }, /a valid --email is required/],
  ];
  const results = await Promise.all(cases.map(([, args, env]) => createAdmin(args, { ...onPostgres, ...env })));
  cases.forEach(([label, , , message], index) => {
    const result = results[index] as Outcome;
    t.equal(result.code, 1, `${label}: exit 1`);
    t.match(result.stderr, message, `${label}: says so`);
    t.match(result.stderr, /^create-admin: /, `${label}: one prefixed line`);
  });
  const bad = await createAdmin(['--email', uniqueEmail('cfg')], { DATABASE_URL: 'mysql://nope', ADMIN_PASSWORD });
  t.equal(bad.code, 1, 'a bad DATABASE_URL: exit 1');
  t.match(bad.stderr, /DATABASE_URL/, 'naming the variable');
  t.notMatch(bad.stderr, /mysql:\/\/nope/, 'without echoing the secret');
});

const { app } = await buildTestApp(t, { databaseUrl: database.url });

t.test('success: exit 0; the admin (roles user + admin) logs in through the app on the same database', async (t) => {
  const email = uniqueEmail('first-admin');
  const result = await createAdmin(['--email', `  ${email.toUpperCase()} `], { ...onPostgres, ADMIN_PASSWORD });
  t.equal(result.code, 0, `exit 0 (${result.stderr.trim()})`);
  t.match(result.stdout, new RegExp(`created admin: ${email.replace(/[.]/g, '\\.')} \\(`), 'reports the new admin');
  t.match(result.stdout, /roles user, admin/, 'with its roles');

  const login = await loginRequest(app, email, ADMIN_PASSWORD);
  t.equal(login.statusCode, 200, 'logs in (the email was trimmed and lower-cased)');
  t.same([...login.json().user.roles].sort(), ['admin', 'user'], 'roles user + admin');
  const token = login.json().accessToken as string;
  t.same([...claimsOf(token).roles].sort(), ['admin', 'user'], 'and in the access token');
  t.equal((await listUsers(app, token)).statusCode, 200, 'it can GET /users');

  const again = await createAdmin(['--email', email], { ...onPostgres, ADMIN_PASSWORD: 'yet another passphrase 9' });
  t.equal(again.code, 0, 'running it again: exit 0');
  t.match(again.stdout, /already an admin/, 'nothing to do');
  t.equal((await loginRequest(app, email, ADMIN_PASSWORD)).statusCode, 200, 'the password is unchanged');
});

t.test('an existing user is promoted, its password unchanged (ADMIN_PASSWORD ignored)', async (t) => {
  const existing = await register(app);
  const withPassword = await createAdmin(['--email', existing.email], { ...onPostgres, ADMIN_PASSWORD });
  t.equal(withPassword.code, 0, `exit 0 (${withPassword.stderr.trim()})`);
  t.match(withPassword.stdout, /promoted existing user to admin \(password unchanged\)/, 'reports the promotion');

  const old = await loginRequest(app, existing.email, existing.password);
  t.equal(old.statusCode, 200, 'the old password still logs in');
  t.same([...old.json().user.roles].sort(), ['admin', 'user'], 'now an admin');
  assertError(
    t,
    await loginRequest(app, existing.email, ADMIN_PASSWORD),
    401,
    'INVALID_CREDENTIALS',
    'ADMIN_PASSWORD was not set as its password',
  );
  const events = await app.db
    .select()
    .from(securityEvents)
    .where(and(eq(securityEvents.userId, existing.id), eq(securityEvents.type, 'roles_changed')));
  t.equal(events.length, 1, 'a roles_changed event');
  t.match(events[0]?.details, { by: 'create-admin', to: ['user', 'admin'] }, 'naming the command');

  const other = await register(app);
  const without = await createAdmin(['--email', other.email], onPostgres);
  t.equal(without.code, 0, 'promoting needs no ADMIN_PASSWORD: exit 0');
  t.equal((await loginRequest(app, other.email, other.password)).statusCode, 200, 'its password works');
});

t.test('the embedded database: no DATABASE_URL, DATA_DIR a fresh folder', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'create-admin-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const email = uniqueEmail('embedded');
  const embedded = { DATA_DIR: dataDir };
  const [created, missing] = await Promise.all([
    createAdmin(['--email', email], { ...embedded, ADMIN_PASSWORD }),
    createAdmin([], { ...embedded, ADMIN_PASSWORD }),
  ]);
  t.equal(created.code, 0, `exit 0 (${created.stderr.trim()})`);
  t.match(
    created.stdout,
    new RegExp(`created admin: ${email.replace(/[.]/g, '\\.')} \\(.*\\), roles user, admin`),
    'created, roles user + admin',
  );
  t.equal(missing.code, 1, 'no --email: exit 1');
  t.match(missing.stderr, /--email/, 'says so');
});
