// Runs `src/server.ts` (or a script) as a real child process for tests: a free port, loopback only, killed by pid.
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Teardown } from './app.js';

export const repoRoot = path.resolve(import.meta.dirname, '../..');

let built: Promise<void> | undefined;

/**
 * The compiled form of `src/<file>.ts`, as `npm start` runs it: dist/ is brought up to date first by the prestart
 * script (under its lock, so parallel test files build once; a no-op when current), once per test process. Child
 * processes run compiled, not through tsx, which costs each start seconds of CPU the suite cannot spare.
 */
export async function compiledEntry(sourceFile: string): Promise<string> {
  built ??= new Promise<void>((resolve, reject) =>
    execFile(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: repoRoot }, (error, _stdout, stderr) =>
      error ? reject(new Error(`build-if-stale failed:\n${stderr}`)) : resolve(),
    ),
  );
  await built;
  const match = /^src\/(.+)\.ts$/.exec(sourceFile);
  if (!match) throw new Error(`${sourceFile}: not a file under src/`);
  return `dist/${match[1]}.js`;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  port: number;
  output(): string;
  alive(): boolean;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal to the child by its pid and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts the server with exactly `env` (plus PATH and HOME) and waits, bounded, for it to listen. `port`: to restart
 * one on the port an earlier process had.
 */
export async function startServerProcess(
  t: Teardown,
  env: Record<string, string>,
  options: { port?: number } = {},
): Promise<ServerProcess> {
  const port = options.port ?? (await freePort());
  // Without SMTP_URL mail goes to DATA_DIR/outbox: a folder of the test's own unless it names one.
  let dataDir = env.DATA_DIR;
  if (!dataDir) {
    const dir = await mkdtemp(path.join(tmpdir(), 'auth-process-data-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    dataDir = dir;
  }
  const child = spawn(process.execPath, [await compiledEntry('src/server.ts')], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      LOG_LEVEL: 'info',
      PORT: String(port),
      HOST: '127.0.0.1',
      ...env,
      DATA_DIR: dataDir,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk;
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const alive = () => child.exitCode === null && child.signalCode === null;
  const stop = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (alive() && child.pid !== undefined) process.kill(child.pid, signal);
    return exited;
  };
  t.teardown(() => stop());

  // Bounded wait until it answers /health/live (whatever the log level).
  // Generous: a PGlite first start (initdb in WebAssembly) on a loaded 2-core machine takes half a minute.
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (!alive()) throw new Error(`server exited early:\n${output}`);
    if (Date.now() > deadline) throw new Error(`server did not listen within 90 s:\n${output}`);
    const live = await request(port, 'GET', '/health/live').catch(() => undefined);
    if (live?.statusCode === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, port, output: () => output, alive, exited, stop };
}

export interface HttpResult {
  statusCode: number;
  body: string;
}

/** One request on its own connection to 127.0.0.1; a network error rejects. */
export function request(
  port: number,
  method: string,
  urlPath: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: urlPath,
        agent: false,
        timeout: 30_000,
        headers: {
          ...headers,
          ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => {
          text += chunk;
        });
        res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: no answer within 30 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}
