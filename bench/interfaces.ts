// The two modules other contributors write, loaded only when a run needs them, so the benchmark works (and says
// what is missing) before they exist. Their contracts are written here once.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface SeedCounts {
  users: number;
  sessions: number;
  refreshTokens: number;
}

/** bench/seed.ts */
export interface SeedModule {
  /** Loads rows with COPY into the migrated database; adds rows, never deletes. */
  seedRows(databaseUrl: string, counts: SeedCounts, log: (line: string) => void): Promise<void>;
  explainHotQueries(databaseUrl: string): Promise<{ name: string; plan: string }[]>;
}

export interface EmbeddedMemory {
  bootRssMb: number;
  peakRssMb: number;
  registrations: number;
  /** A new data folder's initdb, which the server runs once in a process of its own (src/db/pglite-initdb.ts). */
  initdb?: { peakRssMb: number; seconds: number };
}

/** bench/embedded-memory.ts */
export interface EmbeddedMemoryModule {
  /** Starts the service on embedded defaults (no DATABASE_URL / REDIS_URL) and does 20 registrations. */
  measureEmbeddedMemory(log: (line: string) => void): Promise<EmbeddedMemory>;
}

export class MissingModule extends Error {
  override name = 'MissingModule';
}

async function load<T>(file: string, exports: string[]): Promise<T> {
  const absolute = path.join(import.meta.dirname, file);
  if (!existsSync(absolute)) throw new MissingModule(`bench/${file} does not exist yet`);
  // A computed specifier: the type checker does not require the file, which may not be written yet.
  const module = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  const missing = exports.filter((name) => typeof module[name] !== 'function');
  if (missing.length > 0) throw new MissingModule(`bench/${file} does not export ${missing.join(', ')}`);
  return module as T;
}

export const loadSeedModule = () => load<SeedModule>('seed.ts', ['seedRows', 'explainHotQueries']);
export const loadEmbeddedMemoryModule = () =>
  load<EmbeddedMemoryModule>('embedded-memory.ts', ['measureEmbeddedMemory']);
