// Command-line flags and BENCH_* variables of `npm run bench`, validated up front so a typo fails before setup.
import type { SeedCounts } from './interfaces.js';

export interface Options {
  /** Seconds of each measured run (BENCH_SECONDS). */
  seconds: number;
  /** Seconds of the unmeasured run of each side before its first round (BENCH_WARMUP_SECONDS). */
  warmupSeconds: number;
  /** Measured runs of each side, alternating A B A B (BENCH_ROUNDS). */
  rounds: number;
  /** Connections of every scenario but login (BENCH_CONNECTIONS). */
  connections: number;
  /** Connections of the login scenario and of the mixed scenario's storm (BENCH_LOGIN_CONNECTIONS). */
  loginConnections: number;
  /** --write: regenerate BENCHMARKS.md (and bench/results/benchmarks.json). */
  write: boolean;
  /** --seed-rows[=users,sessions,tokens]: rerun on a seeded database. */
  seed: SeedCounts | undefined;
  /** Rounds of each scenario on the seeded database (BENCH_SEED_ROUNDS). */
  seedRounds: number;
  /** --no-embedded: skip the embedded-defaults memory measurement. */
  embedded: boolean;
  /** --only=id,id: run only these scenarios (for development; not with --write). */
  only: string[] | undefined;
}

export const DEFAULT_SEED: SeedCounts = { users: 1_000_000, sessions: 3_000_000, refreshTokens: 10_000_000 };

export const USAGE = `usage: npm run bench -- [--write] [--seed-rows[=users,sessions,tokens]] [--no-embedded] [--only=ids]
  --write        regenerate BENCHMARKS.md and bench/results/benchmarks.json from this run
  --seed-rows    after the empty-database run, seed the database (default 1e6,3e6,1e7) and rerun
                 GET /users/me, login and refresh against it
  --no-embedded  skip the embedded-defaults memory measurement (bench/embedded-memory.ts)
  --only=ids     only these scenarios: authenticated, users-me, login, refresh, mixed (not with --write)
environment: BENCH_SECONDS (8), BENCH_ROUNDS (3), BENCH_CONNECTIONS (50), BENCH_LOGIN_CONNECTIONS (10),
  BENCH_WARMUP_SECONDS (2), BENCH_SEED_ROUNDS (BENCH_ROUNDS - 1, at least 1)`;

function positiveInteger(name: string, raw: string | undefined, fallback: number, minimum = 1): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < minimum)
    throw new Error(`${name}=${raw}: expected a whole number >= ${minimum}`);
  return value;
}

function parseSeed(value: string | undefined): SeedCounts {
  if (value === undefined) return DEFAULT_SEED;
  // Number() reads 1e6 as well as 1000000.
  const counts = value.split(',').map((part) => Number(part.trim()));
  if (counts.length !== 3 || counts.some((count) => !Number.isInteger(count) || count < 1)) {
    throw new Error(`--seed-rows=${value}: expected three counts, users,sessions,tokens (e.g. 1e6,3e6,1e7)`);
  }
  const [users, sessions, refreshTokens] = counts as [number, number, number];
  return { users, sessions, refreshTokens };
}

export function parseOptions(argv: string[], env: Record<string, string | undefined>): Options {
  let write = false;
  let seed: SeedCounts | undefined;
  let embedded = true;
  let only: string[] | undefined;
  for (const arg of argv) {
    const [flag, value] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg];
    if (flag === '--write' && value === undefined) write = true;
    else if (flag === '--seed-rows') seed = parseSeed(value);
    else if (flag === '--no-embedded' && value === undefined) embedded = false;
    else if (flag === '--only' && value) only = value.split(',').map((id) => id.trim());
    else throw new Error(`unknown argument ${arg}\n${USAGE}`);
  }
  if (write && only) throw new Error('--write regenerates BENCHMARKS.md from a full run: drop --only');
  const rounds = positiveInteger('BENCH_ROUNDS', env.BENCH_ROUNDS, 3);
  // 8 s: the default run (5 scenarios x 2 sides x 3 rounds, warm-ups, setup, embedded) stays near 5 minutes.
  const seconds = positiveInteger('BENCH_SECONDS', env.BENCH_SECONDS, 8);
  return {
    seconds,
    warmupSeconds: positiveInteger('BENCH_WARMUP_SECONDS', env.BENCH_WARMUP_SECONDS, Math.min(2, seconds), 0),
    rounds,
    connections: positiveInteger('BENCH_CONNECTIONS', env.BENCH_CONNECTIONS, 50),
    loginConnections: positiveInteger('BENCH_LOGIN_CONNECTIONS', env.BENCH_LOGIN_CONNECTIONS, 10),
    write,
    seed,
    seedRounds: positiveInteger('BENCH_SEED_ROUNDS', env.BENCH_SEED_ROUNDS, Math.max(1, rounds - 1)),
    embedded,
    only,
  };
}

/** The command that reproduces this run: the BENCH_* variables that were set, then the flags. */
export function reproduceCommand(argv: string[], env: Record<string, string | undefined>): string {
  const variables = Object.keys(env)
    .filter((name) => name.startsWith('BENCH_') && env[name]?.trim())
    .sort()
    .map((name) => `${name}=${env[name]}`);
  const flags = argv.length > 0 ? ` -- ${argv.join(' ')}` : '';
  return [...variables, `npm run bench${flags}`].join(' ');
}
