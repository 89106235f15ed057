// Opens the database: a pg pool for DATABASE_URL, else PGlite in the data folder (one process at a time); migrates.
// Each driver is imported only when it is used: a server on Postgres never loads PGlite (nor its WebAssembly), and
// one on PGlite never loads node-postgres.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { mkdir, readFile, rename, rm, rmdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import type { PGlite, PGliteOptions } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type pg from 'pg';
import { schema } from './schema.js';
import { markUnnamedStatements } from './statements.js';

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;
/** A transaction or the database itself: repositories take either. */
export type Executor = Parameters<Parameters<Database['transaction']>[0]>[0] | Database;

/** A pg pool's connections, for metrics. */
export interface PoolState {
  /** Open, idle or in use. */
  total: number;
  idle: number;
  /** Queries waiting for a connection. */
  waiting: number;
}

export interface DatabaseHandle {
  kind: 'postgres' | 'pglite';
  db: Database;
  /** The pool's state now; absent on PGlite, one in-process connection. */
  pool?: () => PoolState;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const migrationsFolder = fileURLToPath(new URL('../../migrations', import.meta.url));

// Any number works; it only has to be the same for every instance of this service.
const MIGRATION_LOCK_ID = 7_342_016_001;

/** Imports a driver's modules once: later calls get the same promise (settled: no wait on the event loop). */
function once<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined;
      throw error;
    });
    return loading;
  };
}

const loadPostgresDriver = once(async () => {
  const [{ default: pg }, { drizzle }, { migrate }] = await Promise.all([
    import('pg'),
    import('drizzle-orm/node-postgres'),
    import('drizzle-orm/node-postgres/migrator'),
  ]);
  return { pg, drizzle, migrate };
});

// All of it up front, before PGlite starts, as when these were static imports. PGlite's start and migrations block
// the event loop; an import after them would give the loop a turn, and Fastify's plugin timeout (a timer) would
// then fire on a slow machine although the plugin is about to finish.
const loadPgliteDriver = once(async () => {
  useBaselineWasmCompilerOnly();
  const [{ PGlite }, { drizzle }, { migrate }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('drizzle-orm/pglite'),
    import('drizzle-orm/pglite/migrator'),
  ]);
  return { PGlite, drizzle, migrate };
});

/**
 * PGlite's Postgres (the only WebAssembly in this process) runs on V8's baseline compiler, Liftoff, without tiering
 * hot functions up to TurboFan. Tiering a 9 MB module is memory-hungry (the optimized code, and compiler zones
 * that glibc keeps afterwards): measured on dist/server.js, this saves ~60 MiB at boot and ~90 MiB after 20
 * registrations, and makes initdb faster. The cost is CPU-heavy SQL, up to ~30% slower in a microbenchmark
 * (aggregating 200k rows); the service's point lookups and small writes showed no difference. Set before PGlite
 * compiles; like any V8 flag it holds for the process, which on the embedded database is a development one.
 */
function useBaselineWasmCompilerOnly(): void {
  v8.setFlagsFromString('--liftoff-only');
}

export interface PostgresOptions {
  /** false: no named prepared statements (PgBouncer < 1.21 in transaction mode cannot keep them). Default true. */
  preparedStatements?: boolean;
}

export async function openPostgres(
  databaseUrl: string,
  onConnectionError: (error: Error) => void,
  options: PostgresOptions = {},
): Promise<DatabaseHandle> {
  const { pg, drizzle: drizzleNodePg } = await loadPostgresDriver();
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: 10,
    connectionTimeoutMillis: 2_000,
    idleTimeoutMillis: 30_000,
    query_timeout: 5_000,
    statement_timeout: 5_000,
  });
  // node-postgres emits 'error' on the Client when its connection dies (backend terminated, socket reset). The
  // pool listens only while a client is idle; a client checked out (a transaction between two queries, or one
  // mid-query, which also gets the error) has no listener of its own, and an unheard 'error' kills the process.
  // So every client gets one for its whole life. pg marks such a client unqueryable, and the pool destroys an
  // unqueryable client on release instead of handing it out again; the request in flight fails with a
  // connection error, which the error handler answers 503.
  const named = options.preparedStatements !== false;
  if (!named) markUnnamedStatements(pool);
  pool.on('connect', (client) => {
    client.on('error', (error) => onConnectionError(withoutClient(error)));
    // A transaction's queries run on the checked-out client, not through the pool.
    if (!named) markUnnamedStatements(client);
    releaseOnFailedBegin(client);
  });
  // An idle client's error reaches both its own listener (reported there) and the pool's; report it once.
  pool.on('error', () => undefined);
  const db = drizzleNodePg(pool, { schema }) as unknown as Database;
  return {
    kind: 'postgres',
    db,
    pool: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    ping: async () => {
      await pool.query('SELECT 1');
    },
    close: () => pool.end(),
  };
}

/**
 * drizzle-orm (0.45) sends a transaction's BEGIN before its try/finally: when BEGIN fails (the connection died
 * between checkout and BEGIN) the client is never released, and the pool of ten is lost after ten such failures,
 * every query then waiting for a connection until a restart. Here the client gives itself back, with the error, so
 * the pool destroys it and opens another; drizzle throws without touching it again.
 */
function releaseOnFailedBegin(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as { query: unknown }).query = (...args: unknown[]) => {
    const result = query(...args);
    const [first] = args;
    const text = typeof first === 'string' ? first : (first as { text?: unknown } | undefined)?.text;
    if (result instanceof Promise && typeof text === 'string' && /^\s*begin\b/i.test(text)) {
      return result.catch((error: unknown) => {
        client.release(error instanceof Error ? error : true);
        throw error;
      });
    }
    return result;
  };
}

/**
 * The error without the `client` the pool attaches to an idle client's error: logging that object would dump the
 * connection, backend cancel key included.
 */
function withoutClient(error: Error): Error {
  const { client: _client, ...members } = error as Error & { client?: unknown };
  return Object.assign(new Error(error.message), members, { name: error.name, stack: error.stack });
}

/** Another live process has the embedded data folder open. */
export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `the data folder ${dataDir} is in use by another process (pid ${pid}): the embedded database (PGlite) serves ` +
        'one process only, and a second one would write to a copy that is silently lost. Stop that process ' +
        '(e.g. the running server) and retry, or set DATABASE_URL to a Postgres server that several processes can share.',
    );
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes `DATA_DIR/.lock` (created exclusively, holding our pid) and returns its release. A lock whose pid is no
 * longer alive was left by a process that died without cleaning up, and is taken over; so is one holding our own
 * pid (a container restarted with the same pid), since one process never opens a data folder twice at once.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = path.join(dataDir, '.lock');
  const ours = `${process.pid}\n`;
  // Bounded: a stale lock is removed at most once before giving up.
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(file, ours, { flag: 'wx', mode: 0o600 });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
      if (holder > 0 && holder !== process.pid && isAlive(holder)) throw new DataDirLockedError(dataDir, holder);
      if (attempt > 0) throw new DataDirLockedError(dataDir, holder);
      await unlink(file).catch(() => undefined);
    }
  }
  // Removes the file only while it is still ours, so a lock taken over since is left alone.
  const releaseSync = () => {
    try {
      if (readFileSync(file, 'utf8') === ours) unlinkSync(file);
    } catch {
      // Already gone.
    }
  };
  // A script that calls process.exit() skips its finally blocks; the lock must not outlive it.
  process.on('exit', releaseSync);
  return async () => {
    process.off('exit', releaseSync);
    releaseSync();
  };
}

/**
 * Postgres settings for the embedded database, given on its command line at every start (they override the
 * postgresql.conf that initdb wrote, so a data folder made by an earlier version opens with them too). PGlite's
 * defaults are a server's (128MB of shared buffers, 64MB for maintenance); these fit a developer's laptop and this
 * service's data (a few MB), and nothing else about the database changes: same fsync setting (PGlite's own `-F`),
 * same WAL, same synchronous_commit.
 */
export const PGLITE_SETTINGS: Readonly<Record<string, string>> = {
  // The buffer cache, most of the memory PGlite touches. 16MB holds this service's tables and indexes many times.
  shared_buffers: '16MB',
  // Else 1/32 of shared_buffers (512kB): one writer, small transactions.
  wal_buffers: '1MB',
  // Per sort or hash in a query, allocated only while one runs; the service's queries sort a page of rows at most.
  work_mem: '2MB',
  // CREATE INDEX (migrations) and VACUUM: tables of a few MB.
  maintenance_work_mem: '16MB',
  // Per session, for temporary tables, which the service never creates.
  temp_buffers: '2MB',
};

/**
 * PGlite's WebAssembly heap at start. pglite.wasm declares a minimum of 2048 pages (128 MiB): a smaller memory
 * fails to link, so this is the smallest that works (and PGlite's default). Postgres grows it on demand; with
 * PGLITE_SETTINGS it no longer has to.
 */
export const PGLITE_INITIAL_MEMORY = 128 * 2 ** 20;

/** The options every PGlite of this service opens with: PGlite's own start parameters plus PGLITE_SETTINGS. */
export async function pgliteOptions(): Promise<PGliteOptions> {
  const { PGlite } = await loadPgliteDriver();
  const settings = Object.entries(PGLITE_SETTINGS).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
  return {
    initialMemory: PGLITE_INITIAL_MEMORY,
    startParams: [...PGlite.defaultStartParams, ...settings],
    // initdb runs Postgres with these too, and writes them into the new data folder's postgresql.conf.
    initDbStartParams: settings,
  };
}

/** Creates a new cluster in `directory`, in this process: the child's half of createPgliteClusterApart. */
export async function createPgliteCluster(directory: string): Promise<void> {
  const [{ PGlite }, options] = await Promise.all([loadPgliteDriver(), pgliteOptions()]);
  await mkdir(directory, { recursive: true });
  const client = await PGlite.create(directory, options);
  await client.close();
}

/**
 * PGlite's initdb, on a new data folder, in a short-lived process of its own (src/db/pglite-initdb.ts), as
 * Postgres's own initdb is a program apart from the server. It runs a second Postgres instance and a copy of its
 * whole heap, over 600 MiB at its peak; in the server's process that peak was the server's, and much of it stayed
 * resident for good (V8 does not count WebAssembly memories as heap pressure). The cluster is made in a staging
 * folder and renamed into place once complete, so a start that dies halfway leaves no half-made database behind.
 */
async function createPgliteClusterApart(directory: string): Promise<void> {
  const staging = `${directory}.initdb`;
  await rm(staging, { recursive: true, force: true });
  // The sibling module, as this one runs: compiled (dist/, .js) or under tsx (src/, .ts, with its loader).
  const extension = path.extname(fileURLToPath(import.meta.url));
  const script = fileURLToPath(new URL(`./pglite-initdb${extension}`, import.meta.url));
  const loader = extension === '.ts' ? ['--import', 'tsx'] : [];
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [...loader, script, staging], { stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    child.stderr.on('data', (chunk: Buffer) => {
      output = (output + chunk).slice(-4_000);
    });
    child.once('error', reject);
    child.once('close', (exitCode) => resolve({ code: exitCode, stderr: output }));
  });
  if (code !== 0) {
    await rm(staging, { recursive: true, force: true });
    throw new Error(`creating the embedded database in ${directory} failed (initdb exit code ${code}):\n${stderr}`);
  }
  // Only an empty folder is replaced: files without a PG_VERSION are not ours to delete.
  await rmdir(directory).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return;
    await rm(staging, { recursive: true, force: true });
    if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
    throw new Error(
      `${directory} holds files but no database (no PG_VERSION): move it away, and the next start creates a new one`,
    );
  });
  await rename(staging, directory);
}

export async function openPglite(dataDir: string): Promise<DatabaseHandle> {
  const folder = path.resolve(dataDir);
  const directory = path.join(folder, 'pglite');
  await mkdir(folder, { recursive: true });
  // PGlite is single-process: a second process on the same files diverges silently. Refuse it up front.
  const unlock = await lockDataDir(folder);
  let client: PGlite;
  let drizzlePglite: typeof import('drizzle-orm/pglite').drizzle;
  try {
    const [driver, options] = await Promise.all([loadPgliteDriver(), pgliteOptions()]);
    const { PGlite } = driver;
    drizzlePglite = driver.drizzle;
    // PGlite's own test for an existing cluster; without one, create() would run initdb here.
    if (!existsSync(path.join(directory, 'PG_VERSION'))) await createPgliteClusterApart(directory);
    client = await PGlite.create(directory, options);
  } catch (error) {
    await unlock();
    throw error;
  }
  const db = drizzlePglite(client, { schema }) as unknown as Database;
  return {
    kind: 'pglite',
    db,
    ping: async () => {
      await client.query('SELECT 1');
    },
    close: async () => {
      try {
        await client.close();
      } finally {
        await unlock();
      }
    },
  };
}

/** What a migration run did: how many migrations it applied, and how many the database now has. */
export interface MigrationResult {
  applied: number;
  total: number;
}

// drizzle's default bookkeeping table, the same for both drivers; absent before the first migration.
const MIGRATIONS_TABLE = 'drizzle.__drizzle_migrations';

type Query = (text: string) => Promise<{ rows: unknown[] }>;

async function countMigrations(query: Query): Promise<number> {
  const exists = await query(`SELECT to_regclass('${MIGRATIONS_TABLE}') IS NOT NULL AS present`);
  if (!(exists.rows[0] as { present?: boolean } | undefined)?.present) return 0;
  const counted = await query(`SELECT count(*)::int AS count FROM ${MIGRATIONS_TABLE}`);
  return Number((counted.rows[0] as { count?: unknown } | undefined)?.count ?? 0);
}

/**
 * Applies pending migrations. On Postgres, an advisory lock keeps concurrent instances from racing: a transaction's
 * lock (pg_advisory_xact_lock), not a session's, so it also holds behind a pooler in transaction mode (PgBouncer),
 * where a session lock would be taken on one server connection and its unlock sent to another, leaking the lock.
 */
export async function migrateDatabase(handle: DatabaseHandle, databaseUrl?: string): Promise<MigrationResult> {
  if (handle.kind === 'pglite') {
    const query: Query = async (text) => (await handle.db.execute(sql.raw(text))) as { rows: unknown[] };
    const before = await countMigrations(query);
    const { migrate: migratePglite } = await loadPgliteDriver();
    await migratePglite(handle.db as never, { migrationsFolder });
    const total = await countMigrations(query);
    return { applied: total - before, total };
  }
  const { pg, drizzle: drizzleNodePg, migrate: migrateNodePg } = await loadPostgresDriver();
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
  // A connection lost mid-migration also fails the pending query, which is what reports it; unheard, the
  // client's 'error' event would kill the process instead.
  client.on('error', () => undefined);
  // drizzle's own BEGIN inside ours is a no-op ("already a transaction in progress"), nothing else.
  client.on('notice', () => undefined);
  await client.connect();
  try {
    // One transaction from the lock to drizzle's COMMIT (which ends ours and releases the lock): the bookkeeping
    // drizzle does before its own transaction runs under the lock too.
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID]);
    // Counted under the lock, so a migration applied by a concurrent instance is not reported as ours.
    const query: Query = (text) => client.query(text);
    const before = await countMigrations(query);
    await migrateNodePg(drizzleNodePg(client), { migrationsFolder });
    const total = await countMigrations(query);
    return { applied: total - before, total };
  } finally {
    // Normally drizzle committed already (a harmless notice); after a failure this ends the transaction.
    await client.query('ROLLBACK').catch(() => undefined);
    await client.end();
  }
}

/** Opens and migrates the database; `migrations` says what the migration run did. */
export async function openDatabase(
  // The Config's own names, so the scripts can pass their config as it is.
  options: { databaseUrl: string | undefined; dataDir: string; databasePreparedStatements?: boolean },
  onConnectionError: (error: Error) => void,
): Promise<DatabaseHandle & { migrations: MigrationResult }> {
  const handle = options.databaseUrl
    ? await openPostgres(options.databaseUrl, onConnectionError, {
        preparedStatements: options.databasePreparedStatements,
      })
    : await openPglite(options.dataDir);
  try {
    return { ...handle, migrations: await migrateDatabase(handle, options.databaseUrl) };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

const connectionErrorCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'EHOSTUNREACH',
]);
const connectionErrorMessages = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Query read timeout',
  'Client has encountered a connection error',
  'Connection terminated unexpectedly',
];

/** True when an error (or one of its causes) means Postgres did not answer, rather than refused the query. */
export function isPostgresUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') {
      // SQLSTATE class 08 (connection exception) and 57P0x (server shutting down / starting).
      if (code.startsWith('08') || /^57P0[1-3]$/.test(code) || connectionErrorCodes.has(code)) return true;
    }
    if (connectionErrorMessages.some((message) => current instanceof Error && current.message.includes(message))) {
      return true;
    }
    if (current instanceof AggregateError && current.errors.some(isPostgresUnavailable)) return true;
  }
  return false;
}
