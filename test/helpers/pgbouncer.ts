// A PgBouncer of the test's own (Debian's /usr/sbin/pgbouncer), in front of the test Postgres: a generated ini on a
// free port, transaction pooling, stopped by its pid at teardown.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Teardown } from './app.js';
import { freePort } from './server-process.js';

export const PGBOUNCER_BINARY = process.env.PGBOUNCER ?? '/usr/sbin/pgbouncer';

export interface PgBouncer {
  port: number;
  /** `databaseUrl` with host and port replaced by PgBouncer's. */
  url(databaseUrl: string): string;
  output(): string;
  stop(): Promise<void>;
}

export interface PgBouncerOptions {
  /** Server connections per database and user; small, so client connections share them. */
  poolSize?: number;
}

export async function startPgBouncer(
  t: Teardown,
  upstreamUrl: string,
  options: PgBouncerOptions = {},
): Promise<PgBouncer> {
  const upstream = new URL(upstreamUrl);
  const user = decodeURIComponent(upstream.username || 'postgres');
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-pgbouncer-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const ini = [
    '[databases]',
    // Every database name the client asks for, on the upstream server: each test file has its own database.
    `* = host=${upstream.hostname} port=${upstream.port || 5432}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    // Trust still wants the user listed in the auth file.
    'auth_type = trust',
    `auth_file = ${path.join(dir, 'users.txt')}`,
    'pool_mode = transaction',
    `default_pool_size = ${options.poolSize ?? 2}`,
    'max_client_conn = 500',
    // node-postgres sends these as startup parameters, which PgBouncer refuses unless told to ignore them.
    'ignore_startup_parameters = extra_float_digits,statement_timeout',
    `logfile = ${path.join(dir, 'pgbouncer.log')}`,
    'server_reset_query = DISCARD ALL',
  ].join('\n');
  await writeFile(path.join(dir, 'pgbouncer.ini'), `${ini}\n`);
  await writeFile(path.join(dir, 'users.txt'), `"${user}" ""\n`);
  // PgBouncer refuses to run as root: as root (CI containers), it switches to nobody, who must read the folder.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await chmod(dir, 0o777);
  const child: ChildProcess = spawn(
    PGBOUNCER_BINARY,
    [...(asRoot ? ['-u', 'nobody'] : []), path.join(dir, 'pgbouncer.ini')],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', (error) => {
    output += `\n${error.message}`;
  });
  const alive = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (alive() && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    await exited;
  };
  t.teardown(stop);
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (!alive()) throw new Error(`pgbouncer exited early:\n${output}`);
    if (Date.now() > deadline) throw new Error(`pgbouncer did not listen within 10 s:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    url: (databaseUrl) => {
      const url = new URL(databaseUrl);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      return url.toString();
    },
    output: () => output,
    stop,
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
