// Memory of the real server process (`node dist/server.js`, what `npm start` runs): RSS after boot and peak RSS
// after 20 registrations, read from /proc/<pid>/status (Linux). By default on the embedded defaults (PGlite and the
// embedded store in a temporary DATA_DIR), whatever DATABASE_URL / REDIS_URL the parent has.
// Sizes are MiB (/proc counts kB of 1024 bytes). Another script imports measureEmbeddedMemory; run alone,
// `tsx bench/embedded-memory.ts` prints it, with `--restart` also a second start on the same data folder (no
// initdb), with `--servers` on Postgres and Redis instead (TEST_DATABASE_URL / TEST_REDIS_URL, else the local
// servers; a database and a key prefix of its own, removed afterwards); MEMORY_CONCURRENCY registrations at once.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, request } from '../test/helpers/server-process.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const REGISTRATIONS = 20;
const BOOT_TIMEOUT_MS = 120_000;

export interface MemoryResult {
  /** VmRSS once /health/ready answers 200. */
  bootRssMb: number;
  /** VmHWM (the process's peak RSS) after the registrations. */
  peakRssMb: number;
  /** Registrations answered 201. */
  registrations: number;
  initdb?: { peakRssMb: number; seconds: number };
}

export interface MeasureOptions {
  /** Extra environment for the server (DATABASE_URL, REDIS_URL, ...); none by default: the embedded defaults. */
  env?: Record<string, string>;
  /** Registrations in flight at once; 1 by default (one developer clicking). */
  concurrency?: number;
  /**
   * Then stops the server (SIGTERM) and starts it again on the same data folder, and measures that second run the
   * same way: the first run of a new data folder includes PGlite's one-time initdb, every later start does not.
   */
  restart?: boolean;
}

export interface MeasureResult extends MemoryResult {
  restart?: MemoryResult;
}

/**
 * Embedded defaults: PGlite and the embedded store, in a temporary data folder; and, apart, the initdb process the
 * server starts once for a new data folder.
 */
export async function measureEmbeddedMemory(log: (line: string) => void): Promise<MemoryResult> {
  const server = await measureServerMemory(log);
  return { ...server, initdb: await measureInitdb(log) };
}

/** dist/db/pglite-initdb.js on a new folder, as the server runs it: its peak RSS (it reports its own) and time. */
export async function measureInitdb(log: (line: string) => void): Promise<{ peakRssMb: number; seconds: number }> {
  const temp = await mkdtemp(path.join(tmpdir(), 'auth-initdb-'));
  try {
    const started = performance.now();
    const { code, output } = await runNode(['dist/db/pglite-initdb.js', path.join(temp, 'pglite')]);
    const seconds = Math.round((performance.now() - started) / 100) / 10;
    const report = /\{"peakRssKb":(\d+)\}/.exec(output);
    if (code !== 0 || !report) throw new Error(`pglite-initdb failed (exit code ${code}):\n${output}`);
    const peakRssMb = Math.round(Number(report[1]) / 1024);
    log(`initdb in its own process: peak rss ${peakRssMb} MiB, ${seconds} s`);
    return { peakRssMb, seconds };
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

export async function measureServerMemory(
  log: (line: string) => void,
  options: MeasureOptions = {},
): Promise<MeasureResult> {
  await ensureBuilt(log);
  const temp = await mkdtemp(path.join(tmpdir(), 'auth-memory-'));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    NODE_ENV: 'development',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    DATA_DIR: path.join(temp, 'data'),
    KEYS_DIR: path.join(temp, 'keys'),
    ...options.env,
  };
  try {
    const first = await measureRun(log, env, options.concurrency ?? 1, options.restart === true);
    if (!options.restart) return first;
    log('restarting on the same data folder');
    return { ...first, restart: await measureRun(log, env, options.concurrency ?? 1, false) };
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

/**
 * One server process: boot, RSS, the registrations, peak RSS; then stopped by pid, with SIGKILL, or when `graceful`
 * with SIGTERM (it closes the database) and SIGKILL only if it is still running 15 s later.
 */
async function measureRun(
  log: (line: string) => void,
  baseEnv: Record<string, string>,
  concurrency: number,
  graceful: boolean,
): Promise<MemoryResult> {
  const port = await freePort();
  const started = Date.now();
  const child: ChildProcess = spawn(process.execPath, ['dist/server.js'], {
    cwd: root,
    env: { ...baseEnv, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk).slice(-20_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  try {
    const pid = child.pid;
    if (pid === undefined) throw new Error('could not start dist/server.js');
    for (;;) {
      if (!alive()) throw new Error(`the server exited during boot:\n${output}`);
      if (Date.now() - started > BOOT_TIMEOUT_MS) throw new Error(`not ready within ${BOOT_TIMEOUT_MS} ms:\n${output}`);
      const ready = await request(port, 'GET', '/health/ready').catch(() => undefined);
      if (ready?.statusCode === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const bootMs = Date.now() - started;
    const boot = await memoryOf(pid);
    log(`ready in ${bootMs} ms: rss ${boot.rssMb} MiB (peak so far ${boot.hwmMb} MiB)`);

    const password = 'correct horse battery staple 42';
    const stamp = `${Date.now().toString(36)}-${port}`;
    let next = 0;
    let registered = 0;
    const failures: string[] = [];
    const register = async () => {
      while (next < REGISTRATIONS) {
        const email = `memory-${stamp}-${next++}@example.com`;
        const result = await request(port, 'POST', '/auth/register', { email, password });
        if (result.statusCode === 201) registered++;
        else failures.push(`${result.statusCode} ${result.body.slice(0, 200)}`);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, register));
    const after = await memoryOf(pid);
    log(
      `${registered}/${REGISTRATIONS} registrations: rss ${after.rssMb} MiB, peak ${after.hwmMb} MiB` +
        (failures.length > 0 ? `; failures: ${failures.slice(0, 3).join(' | ')}` : ''),
    );
    return { bootRssMb: boot.rssMb, peakRssMb: after.hwmMb, registrations: registered };
  } finally {
    if (child.pid !== undefined && alive()) {
      process.kill(child.pid, graceful ? 'SIGTERM' : 'SIGKILL');
      const stillRunning = setTimeout(() => {
        if (child.pid !== undefined && alive()) process.kill(child.pid, 'SIGKILL');
      }, 15_000);
      await exited;
      clearTimeout(stillRunning);
    }
  }
}

/** `npm start`'s prestart: compiles src/ into dist/ only when dist/ is stale. */
async function ensureBuilt(log: (line: string) => void): Promise<void> {
  const { code, output } = await runNode(['scripts/build-if-stale.mjs']);
  if (code !== 0) throw new Error(`build-if-stale failed (exit code ${code}):\n${output}`);
  if (output.trim() !== '') log(output.trim());
}

/** A Node script in the repository, to its end: exit code, stdout and stderr together. */
async function runNode(args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk;
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, output };
}

async function memoryOf(pid: number): Promise<{ rssMb: number; hwmMb: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(match[1]);
  };
  // MiB, as the issue reports them (/proc counts kB of 1024 bytes).
  const mb = (value: number) => Math.round(value / 1024);
  return { rssMb: mb(kib('VmRSS')), hwmMb: mb(kib('VmHWM')) };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const withServers = process.argv.includes('--servers');
  const concurrency = Number(process.env.MEMORY_CONCURRENCY ?? 1);
  let env: Record<string, string> | undefined;
  const cleanups: (() => Promise<unknown>)[] = [];
  if (withServers) {
    const { testServers } = await import('../test/helpers/servers.js');
    const { createTestDatabase } = await import('../test/helpers/database.js');
    const servers = await testServers();
    const database = await createTestDatabase(servers.databaseUrl);
    cleanups.push(() => database.drop());
    const prefix = `memtest:${Date.now()}:`;
    cleanups.push(() => deleteRedisKeys(servers.redisUrl, prefix));
    env = { DATABASE_URL: database.url, REDIS_URL: servers.redisUrl, REDIS_KEY_PREFIX: prefix };
  }
  try {
    const restart = process.argv.includes('--restart');
    const result = await measureServerMemory((line) => console.log(line), { env, concurrency, restart });
    console.log(JSON.stringify({ servers: withServers, concurrency, ...result }));
  } finally {
    for (const cleanup of cleanups) await cleanup();
  }
}

async function deleteRedisKeys(url: string, prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
