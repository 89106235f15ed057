// One process per embedded data folder: while the server holds DATA_DIR, create-admin and prune refuse with a clear
// message instead of writing to a diverging copy; once it stops (or dies), they work, and what they wrote is kept.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { compiledEntry, repoRoot, request, startServerProcess } from '../helpers/server-process.js';

const ADMIN_PASSWORD = 'a long and unusual admin passphrase';

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a script with only the environment given (plus PATH and HOME). */
async function runScript(script: string, args: string[], env: Record<string, string>): Promise<Outcome> {
  const entry = await compiledEntry(`src/scripts/${script}.ts`);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [entry, ...args],
      {
        cwd: repoRoot,
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

const root = await mkdtemp(path.join(tmpdir(), 'auth-embedded-lock-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
const dataDir = path.join(root, 'data');
const serverKeys = path.join(root, 'server-keys');
// prune must never need (or write) a key: this folder stays empty.
const emptyKeys = path.join(root, 'empty-keys');
await mkdir(emptyKeys);
const embedded = { NODE_ENV: 'development', DATA_DIR: dataDir };
const serverEnv = { ...embedded, KEYS_DIR: serverKeys, COOKIE_SECURE: 'false', RATE_LIMIT_ENABLED: 'false' };
const email = 'lock-admin@example.com';
const escapedDataDir = path.resolve(dataDir).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

t.test('while the server holds the data folder, create-admin and prune refuse', async (t) => {
  const server = await startServerProcess(t, serverEnv);
  const pid = server.child.pid as number;
  const lock = await readFile(path.join(dataDir, '.lock'), 'utf8').catch(() => '');
  t.equal(lock.trim(), String(pid), 'the lock names the server');

  const admin = await runScript('create-admin', ['--email', email], { ...embedded, ADMIN_PASSWORD });
  t.not(admin.code, 0, 'create-admin exits non-zero');
  t.notMatch(admin.stdout, /created admin/, 'and never claims to have created the admin');
  t.match(admin.stderr, new RegExp(escapedDataDir), 'the message names the data folder');
  t.match(admin.stderr, new RegExp(`another process \\(pid ${pid}\\)`), 'and the process holding it');
  t.match(admin.stderr, /DATABASE_URL/, 'and says what to do');

  const prune = await runScript('prune', [], { ...embedded, KEYS_DIR: emptyKeys });
  t.not(prune.code, 0, 'prune exits non-zero');
  t.match(prune.stderr, new RegExp(`another process \\(pid ${pid}\\)`), 'for the same reason');
  t.same(await readdir(emptyKeys), [], 'prune wrote no key');

  t.equal((await request(server.port, 'GET', '/health/ready')).statusCode, 200, 'the server is unaffected');
  const { code } = await server.stop('SIGTERM');
  t.equal(code, 0, 'the server stops cleanly');
  t.notOk((await readdir(dataDir)).includes('.lock'), 'and releases the lock');
});

t.test('with the server stopped, create-admin and prune work, and the admin survives into the next boot', async (t) => {
  const admin = await runScript('create-admin', ['--email', email], { ...embedded, ADMIN_PASSWORD });
  t.equal(admin.code, 0, `create-admin exits 0 (${admin.stderr.trim()})`);
  t.match(admin.stdout, /created admin: lock-admin@example\.com/);

  const prune = await runScript('prune', [], { ...embedded, KEYS_DIR: emptyKeys });
  t.equal(prune.code, 0, `prune exits 0 (${prune.stderr.trim()})`);
  t.match(prune.stdout, /pruned \d+ sessions, \d+ refresh tokens, \d+ revocations/);
  t.same(await readdir(emptyKeys), [], 'prune needed no signing key and wrote none');
  t.notOk((await readdir(dataDir)).includes('.lock'), 'the scripts released the lock');

  const server = await startServerProcess(t, serverEnv);
  const login = await request(server.port, 'POST', '/auth/login', { email, password: ADMIN_PASSWORD });
  t.equal(login.statusCode, 200, 'the admin logs in on the next boot');
  t.match(JSON.parse(login.body), { user: { roles: ['user', 'admin'] } });

  // A process that dies without cleaning up leaves a stale lock: the next one takes it over.
  const { signal } = await server.stop('SIGKILL');
  t.equal(signal, 'SIGKILL');
  t.ok((await readdir(dataDir)).includes('.lock'), 'the killed server left its lock behind');
  const again = await runScript('create-admin', ['--email', email], { ...embedded, ADMIN_PASSWORD });
  t.equal(again.code, 0, `a stale lock is taken over (${again.stderr.trim()})`);
  t.match(again.stdout, /already an admin/);
});
