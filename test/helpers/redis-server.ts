// A private, non-persistent redis-server process for a test: its own free port, stopped by its pid.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Teardown } from './app.js';
import { freePort } from './server-process.js';

export interface RedisProcess {
  port: number;
  url: string;
  /** Kills the process (SIGKILL) and waits for it to exit: every key is gone. */
  kill(): Promise<void>;
  /** Starts it again, empty, on the same port. */
  start(): Promise<void>;
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(500, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.write('PING\r\n');
    });
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
  });
}

export interface RedisServerOptions {
  /** A config file, read first (a sentinel needs one it can rewrite). */
  configFile?: string;
  /** Arguments that depend on the port (e.g. a cluster's nodes-<port>.conf). */
  portArgs?: (port: number) => string[];
}

/** Starts `redis-server` with no persistence (`--save "" --appendonly no`) plus `args`. */
export async function startRedisServer(
  t: Teardown,
  args: string[] = [],
  options: RedisServerOptions = {},
): Promise<RedisProcess> {
  const port = await freePort();
  // Its working folder: a replica's full sync writes an RDB file there, never into the checkout.
  const dir = await mkdtemp(path.join(tmpdir(), 'redis-server-'));
  let child: ChildProcess | undefined;
  const start = async () => {
    const proc = spawn(
      'redis-server',
      [
        ...(options.configFile ? [options.configFile] : []),
        ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
        ...(options.portArgs?.(port) ?? []),
        ...args,
      ],
      { stdio: 'ignore' },
    );
    child = proc;
    const deadline = Date.now() + 10_000;
    while (!(await answers(port))) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}`);
      if (Date.now() > deadline) throw new Error('redis-server did not answer within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  const kill = async () => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    if (proc.pid !== undefined) process.kill(proc.pid, 'SIGKILL');
    await exited;
  };
  await start();
  t.teardown(async () => {
    await kill();
    await rm(dir, { recursive: true, force: true });
  });
  return { port, url: `redis://127.0.0.1:${port}`, kill, start };
}
