import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import t, { type Test } from 'tap';
import { makeKeysDir } from './helpers/app.js';
import { createTestDatabase } from './helpers/database.js';
import { compiledEntry, freePort, request } from './helpers/server-process.js';
import { testServers } from './helpers/servers.js';

const repoRoot = path.resolve(import.meta.dirname, '..');

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

interface Server {
  child: ChildProcessWithoutNullStreams;
  port: number;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The environment of one server process on a database, Redis prefix and key folder of its own; `cleanup` drops the
 * Redis keys (call it once the process is gone; the database and keys go in teardown).
 */
async function makeDataDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-server-data-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function serverEnv(t: Test): Promise<{ port: number; env: Record<string, string>; cleanup(): Promise<void> }> {
  const servers = await testServers();
  const database = await createTestDatabase(servers.databaseUrl);
  t.teardown(() => database.drop());
  const redisKeyPrefix = `test:server:${randomBytes(6).toString('hex')}:`;
  const port = await freePort();
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: database.url,
    REDIS_URL: servers.redisUrl,
    REDIS_KEY_PREFIX: redisKeyPrefix,
    KEYS_DIR: await makeKeysDir(t),
    RATE_LIMIT_ENABLED: 'false',
    PRUNE_INTERVAL: '0',
    // The outbox of this test's own (without SMTP_URL mail is written there), never the checkout's ./data.
    DATA_DIR: await makeDataDir(t),
  };
  const cleanup = async () => {
    const { Redis } = await import('ioredis');
    const redis = new Redis(servers.redisUrl);
    const keys = await redis.keys(`${redisKeyPrefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  };
  return { port, env, cleanup };
}

/** Waits (bounded) for the listening line. */
async function listening(child: { exitCode: number | null }, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!/Server listening/.test(output())) {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${output()}`);
    if (Date.now() > deadline) throw new Error(`server did not listen within 30 s:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function startServer(t: Test, extraEnv: Record<string, string>): Promise<Server> {
  const { port, env, cleanup } = await serverEnv(t);
  const child = spawn(process.execPath, [await compiledEntry('src/server.ts')], {
    cwd: repoRoot,
    env: { ...env, ...extraEnv },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    await cleanup();
  });
  await listening(child, () => output);
  return { child, port, output: () => output, exited };
}

async function waitUntilRefused(port: number, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await refused(port)) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

t.test('SIGTERM: the server stops listening and exits 0', async (t) => {
  const server = await startServer(t, {});
  const live = await request(server.port, 'GET', '/health/live');
  t.equal(live.statusCode, 200, 'it serves before the signal');

  server.child.kill('SIGTERM');
  t.ok(await waitUntilRefused(server.port), 'new connections are refused');
  const { code, signal } = await server.exited;
  t.equal(code, 0, 'exit code 0');
  t.equal(signal, null, 'it exited by itself, not by the signal');
  t.match(server.output(), /shutting down/);
});

t.test('SIGTERM: an in-flight request completes normally', async (t) => {
  // Hashing with time cost 40 takes about a second: long enough to signal mid-request. The request line is debug.
  // SHUTDOWN_TIMEOUT well above that: on a loaded CI machine the hash can take several times as long, and the bound
  // itself is test/ops/shutdown.test.ts's to check.
  const server = await startServer(t, { ARGON2_TIME_COST: '40', LOG_LEVEL: 'debug', SHUTDOWN_TIMEOUT: '90' });
  const email = `shutdown-${randomUUID()}@example.com`;
  const inFlight = request(server.port, 'POST', '/auth/register', {
    email,
    password: `graceful-${randomBytes(8).toString('hex')}`,
    name: 'Graceful',
  });
  // Signal only once the request has reached the server.
  const deadline = Date.now() + 10_000;
  while (!/incoming request/.test(server.output()) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  t.match(server.output(), /incoming request/, 'the request reached the server');
  server.child.kill('SIGTERM');

  t.ok(await waitUntilRefused(server.port), 'new connections are refused while the request finishes');
  const response = await inFlight;
  t.equal(response.statusCode, 201, 'the in-flight request got its normal status');
  t.match(JSON.parse(response.body), { user: { email } });

  const { code } = await server.exited;
  t.equal(code, 0, 'exit code 0');
  t.ok(
    server.output().indexOf('shutting down') < server.output().indexOf('request completed'),
    'the signal arrived before the request completed',
  );
});

t.test('logs: JSON off a terminal, the migration run reported, health probes not logged at info', async (t) => {
  const server = await startServer(t, {});
  for (const url of ['/health/live', '/health/ready', '/.well-known/jwks.json']) {
    t.equal((await request(server.port, 'GET', url)).statusCode, 200, `${url} answers`);
  }
  server.child.kill('SIGTERM');
  await server.exited;

  const lines = server
    .output()
    .split('\n')
    .filter((line) => line.trim() !== '');
  const entries = lines.map((line) => JSON.parse(line) as { msg?: string; applied?: number; req?: { url?: string } });
  t.ok(lines.length > 0, 'stdout is not a terminal: every line is JSON');

  const journal = JSON.parse(await readFile(path.join(repoRoot, 'migrations/meta/_journal.json'), 'utf8')) as {
    entries: unknown[];
  };
  const migrated = entries.find((entry) => entry.msg?.startsWith('database migrated'));
  t.equal(migrated?.applied, journal.entries.length, 'a fresh database: every migration applied, and said so');

  const urls = entries.flatMap((entry) => (entry.req?.url ? [entry.req.url] : []));
  t.ok(urls.includes('/.well-known/jwks.json'), 'ordinary requests are logged');
  t.notOk(
    urls.some((url) => url.startsWith('/health/')),
    'health probes are not',
  );
});

// util-linux script(1) runs a command on a pseudo-terminal: the one way to give the server a real TTY here.
const hasScript = process.platform === 'linux' && spawnSync('script', ['--version']).status === 0;

t.test(
  'on a terminal, outside production, the logs are pretty-printed',
  { skip: hasScript ? false : 'needs util-linux script(1) for a pseudo-terminal' },
  async (t) => {
    const { port, env, cleanup } = await serverEnv(t);
    // `exec` keeps the shell's pid, printed first, for the server: the signal goes to it, not to script(1).
    const command = `echo PID=$$; exec '${process.execPath}' --import tsx src/server.ts`;
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: repoRoot,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output += chunk;
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const exited = new Promise((resolve) => child.on('exit', resolve));
    let serverPid: number | undefined;
    t.teardown(async () => {
      try {
        if (serverPid !== undefined) process.kill(serverPid, 'SIGKILL');
      } catch {
        // Already gone.
      }
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      await cleanup();
    });
    await listening(child, () => output);
    serverPid = Number(/PID=(\d+)/.exec(output)?.[1]);
    t.equal((await request(port, 'GET', '/.well-known/jwks.json')).statusCode, 200);
    process.kill(serverPid, 'SIGTERM');
    await exited;
    serverPid = undefined;

    const text = stripVTControlCharacters(output);
    t.match(text, /INFO: Server listening at http:\/\/127\.0\.0\.1:\d+/, 'a readable line per message');
    t.match(text, /INFO: database migrated: \d+ migration\(s\) applied/, 'the migration run is reported');
    t.match(text, /INFO: request completed\s+reqId: "/, 'fields on their own lines below it');
    t.match(text, /INFO: shutting down/);
    t.notMatch(text, /^\{"level"/m, 'no JSON lines');
  },
);
