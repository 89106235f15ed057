// The benchmark's child processes: each a plain `node` on a transpiled file (bench/build.ts), pinned to a CPU with taskset when it
// can be, waiting (bounded) for its ready message over IPC, and killed by its pid. Every child started here is in
// `running` until it exits, so the runner can kill them all on an error or Ctrl-C.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ReadyMessage } from './child.js';

export const repoRoot = path.resolve(import.meta.dirname, '..');

export interface Pinning {
  /** CPU of the servers (service and references), or undefined when not pinned. */
  serverCpu: number | undefined;
  /** CPU of the load generator (and of the runner itself). */
  loadCpu: number | undefined;
  description: string;
}

/** CPUs this process may run on (Linux), e.g. "0-1" or "0,2"; undefined elsewhere. */
function allowedCpus(): number[] | undefined {
  let status: string;
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return undefined;
  }
  const list = /^Cpus_allowed_list:\s*(.+)$/m.exec(status)?.[1];
  if (!list) return undefined;
  return list.split(',').flatMap((part) => {
    const [from, to] = part.split('-').map(Number) as [number, number | undefined];
    return Array.from({ length: (to ?? from) - from + 1 }, (_, i) => from + i);
  });
}

/**
 * Servers on the first allowed CPU, the load generator on the second: the server under test never competes with
 * the load generator (Postgres and Redis still run wherever the kernel puts them). Without taskset or a second CPU,
 * nothing is pinned and the report says so.
 */
export function choosePinning(): Pinning {
  const cpus = allowedCpus();
  if (!cpus || cpus.length < 2) {
    return { serverCpu: undefined, loadCpu: undefined, description: `not pinned: ${cpus?.length ?? '?'} CPU allowed` };
  }
  const probe = spawnSync('taskset', ['-c', String(cpus[0]), 'true']);
  if (probe.error || probe.status !== 0) {
    return { serverCpu: undefined, loadCpu: undefined, description: 'not pinned: taskset is not available' };
  }
  const [serverCpu, loadCpu] = cpus as [number, number];
  return {
    serverCpu,
    loadCpu,
    description: `taskset: servers on CPU ${serverCpu}, load generator and runner on CPU ${loadCpu}`,
  };
}

/**
 * Moves the local Postgres and Redis (every process of them, and the backends Postgres forks later, which inherit
 * the postmaster's affinity) onto `cpu`, the load generator's: the server under test then has its CPU to itself, as
 * with a database on its own host, and the references (which use neither) are measured on the same footing.
 * Returns the restore, which puts each process back on the CPUs it had; a process we may not move is left alone.
 */
export function pinBackingServers(cpu: number | undefined): { restore: () => void; description: string } {
  if (cpu === undefined) return { restore: () => undefined, description: 'Postgres and Redis not pinned' };
  const pids = ['postgres', 'redis-server'].flatMap((name) => {
    const found = spawnSync('pgrep', ['-x', name], { encoding: 'utf8' });
    return found.status === 0 ? found.stdout.split('\n').filter(Boolean) : [];
  });
  const moved: { pid: string; cpus: string }[] = [];
  for (const pid of pids) {
    const current = /: (\S+)\s*$/.exec(spawnSync('taskset', ['-c', '-p', pid], { encoding: 'utf8' }).stdout ?? '');
    if (!current?.[1]) continue;
    if (spawnSync('taskset', ['-a', '-c', '-p', String(cpu), pid]).status === 0) moved.push({ pid, cpus: current[1] });
  }
  return {
    restore: () => {
      for (const { pid, cpus } of moved) spawnSync('taskset', ['-a', '-c', '-p', cpus, pid]);
    },
    description:
      moved.length > 0
        ? `local Postgres and Redis (${moved.length} processes) on CPU ${cpu} with the load generator`
        : 'Postgres and Redis not pinned (not local, or not ours to move)',
  };
}

/** Moves this process (every thread of it, `-a`) to `cpu`; a failure only costs precision. */
export function pinSelf(cpu: number | undefined): void {
  if (cpu !== undefined) spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)]);
}

export interface ChildOptions {
  /** Exactly these variables (plus PATH and HOME): nothing of the runner's environment leaks into a measurement. */
  env: Record<string, string>;
  cpu: number | undefined;
  /** Where the child's stdout goes: the service's JSON log is discarded, as a log shipper would take it away. */
  stdout?: 'ignore' | 'inherit';
  readyTimeoutMs?: number;
}

export interface Child {
  name: string;
  pid: number;
  /** Port announced by a server; undefined for the load generator. */
  port: number | undefined;
  process: ChildProcess;
  /** The last 16 KiB of stderr, for error messages. */
  stderr(): string;
  memory(): ProcessMemory | undefined;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface ProcessMemory {
  /** Resident set size now (VmRSS), MiB. */
  rssMb: number;
  /** Peak resident set size since start (VmHWM), MiB. */
  peakRssMb: number;
}

const running = new Set<Child>();
/** The first child that died on its own (not through stop() or killAll()): the figures after it mean nothing. */
let crashed: Error | undefined;
let killingAll = false;

/** Throws if a child died on its own since the start. */
export function assertNoCrash(): void {
  if (crashed) throw crashed;
}

/** Linux only: VmRSS and VmHWM of a live process. */
export function readMemory(pid: number): ProcessMemory | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s*(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  const rssMb = kib('VmRSS') / 1024;
  const peakRssMb = kib('VmHWM') / 1024;
  return Number.isFinite(rssMb) && Number.isFinite(peakRssMb) ? { rssMb, peakRssMb } : undefined;
}

/** Runs `file` (JavaScript: see bench/build.ts) as a child named `name`, and waits for its ready message. */
export async function startChild(name: string, file: string, options: ChildOptions): Promise<Child> {
  const node = [process.execPath, file];
  // taskset execs node in place: the pid we get is node's own, so /proc/<pid>/status is the server's.
  const [command, ...args] = options.cpu === undefined ? node : ['taskset', '-c', String(options.cpu), ...node];
  const spawned = spawn(command as string, args, {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env },
    stdio: ['ignore', options.stdout ?? 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  let stopping = false;
  spawned.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-16_384);
  });
  // 'error' without 'exit' when it could not be spawned at all.
  const exited = new Promise<void>((resolve) => {
    spawned.once('exit', () => resolve());
    spawned.once('error', () => resolve());
  });
  const alive = () => spawned.exitCode === null && spawned.signalCode === null;
  const kill = (signal: NodeJS.Signals) => {
    if (alive() && spawned.pid !== undefined) process.kill(spawned.pid, signal);
  };
  const child: Child = {
    name,
    pid: spawned.pid ?? -1,
    port: undefined,
    process: spawned,
    stderr: () => stderr,
    memory: () => (spawned.pid === undefined ? undefined : readMemory(spawned.pid)),
    stop: async (graceMs = 5_000) => {
      stopping = true;
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(child);
  spawned.once('exit', (code, signal) => {
    running.delete(child);
    if (!stopping && !killingAll)
      crashed ??= new Error(`${name} exited (${signal ?? `code ${code}`})\n${stderr.trim()}`);
  });

  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  const ready = await new Promise<ReadyMessage>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} was not ready within ${timeoutMs / 1000} s`)), timeoutMs);
    spawned.on('message', (message: ReadyMessage) => {
      if (message?.type !== 'ready') return;
      clearTimeout(timer);
      resolve(message);
    });
    spawned.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before it was ready (${signal ?? `code ${code}`})`));
    });
    spawned.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  }).catch(async (error: Error) => {
    kill('SIGKILL');
    await exited;
    throw new Error(`${error.message}\n${stderr.trim()}`);
  });
  child.port = ready.port;
  return child;
}

/** Kills every child still running, at once (used on errors and signals). */
export function killAll(): void {
  killingAll = true;
  for (const child of running) {
    if (child.process.pid !== undefined && child.process.exitCode === null) {
      try {
        process.kill(child.process.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

/** Stops every child still running, gracefully. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((child) => child.stop()));
}
