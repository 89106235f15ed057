// Store for one process without Redis: counters in memory, deny-list entries also appended to a file in the
// data folder so a revoked token stays revoked across a restart.
import { type FileHandle, mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  type CounterState,
  counterKey,
  denyKey,
  type EvictionCheck,
  type RevocationState,
  type Store,
  toRevocationState,
} from './store.js';

interface Entry {
  value: string;
  expiresAt: number;
}

type Now = () => number;

export class EmbeddedStore implements Store {
  readonly kind = 'embedded';
  readonly #entries = new Map<string, Entry>();
  readonly #now: Now;
  readonly #log: FileHandle;
  #writes: Promise<unknown> = Promise.resolve();
  readonly #sweeper: NodeJS.Timeout;

  private constructor(log: FileHandle, entries: Map<string, Entry>, now: Now) {
    this.#log = log;
    this.#entries = entries;
    this.#now = now;
    this.#sweeper = setInterval(() => this.#sweep(), 60_000);
    this.#sweeper.unref();
  }

  static async open(dataDir: string, now: Now = Date.now): Promise<EmbeddedStore> {
    await mkdir(dataDir, { recursive: true });
    const file = path.resolve(dataDir, 'deny-list.jsonl');
    const entries = new Map<string, Entry>();
    const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return '';
      throw error;
    });
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        const { key, value, expiresAt } = JSON.parse(line) as { key: string } & Entry;
        if (expiresAt > now()) entries.set(key, { value, expiresAt });
      } catch {
        // A line torn by a crash mid-write: everything before it is intact.
      }
    }
    // Compact: rewrite only the live entries, atomically.
    const compacted = [...entries].map(([key, entry]) => `${JSON.stringify({ key, ...entry })}\n`).join('');
    await writeFile(`${file}.tmp`, compacted, { mode: 0o600 });
    await rename(`${file}.tmp`, file);
    const log = await open(file, 'a', 0o600);
    return new EmbeddedStore(log, entries, now);
  }

  #get(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  async #persist(key: string, entry: Entry): Promise<void> {
    this.#entries.set(key, entry);
    const line = `${JSON.stringify({ key, ...entry })}\n`;
    // Serialised appends, each synced before the revocation is acknowledged.
    const write = this.#writes.then(async () => {
      await this.#log.write(line);
      await this.#log.datasync();
    });
    this.#writes = write.catch(() => undefined);
    await write;
  }

  async revokeToken(jti: string, ttlMs: number): Promise<void> {
    await this.#persist(denyKey.token(jti), { value: '1', expiresAt: this.#now() + ttlMs });
  }

  async revokeSession(sid: string, ttlMs: number): Promise<void> {
    await this.#persist(denyKey.session(sid), { value: '1', expiresAt: this.#now() + ttlMs });
  }

  async raiseUserMinVersion(sub: string, minVersion: number, ttlMs: number): Promise<void> {
    const key = denyKey.user(sub);
    const current = this.#get(key);
    const expiresAt = Math.max(this.#now() + ttlMs, current?.expiresAt ?? 0);
    const value = String(Math.max(minVersion, Number(current?.value ?? 0)));
    await this.#persist(key, { value, expiresAt });
  }

  async revocationState(jti: string, sid: string, sub: string): Promise<RevocationState> {
    // One process, every entry synced to its file before it is acknowledged: nothing is ever lost, so the epoch is
    // always present.
    return toRevocationState(
      this.#get(denyKey.token(jti))?.value ?? null,
      this.#get(denyKey.session(sid))?.value ?? null,
      this.#get(denyKey.user(sub))?.value ?? null,
      'embedded',
    );
  }

  async markSynced(): Promise<void> {}

  async lockRebuild(): Promise<() => Promise<void>> {
    return async () => undefined;
  }

  async checkEviction(): Promise<EvictionCheck> {
    return { policy: 'noeviction', safe: true };
  }

  async hit(key: string, windowMs: number): Promise<CounterState> {
    const now = this.#now();
    const storeKey = counterKey(key);
    const current = this.#get(storeKey);
    const entry = current
      ? { value: String(Number(current.value) + 1), expiresAt: current.expiresAt }
      : { value: '1', expiresAt: now + windowMs };
    this.#entries.set(storeKey, entry);
    return { count: Number(entry.value), resetInMs: entry.expiresAt - now };
  }

  async release(key: string): Promise<number> {
    const storeKey = counterKey(key);
    const current = this.#get(storeKey);
    if (!current) return 0;
    const count = Number(current.value) - 1;
    if (count <= 0) {
      this.#entries.delete(storeKey);
      return 0;
    }
    this.#entries.set(storeKey, { value: String(count), expiresAt: current.expiresAt });
    return count;
  }

  async peek(key: string): Promise<CounterState> {
    const entry = this.#get(counterKey(key));
    return entry
      ? { count: Number(entry.value), resetInMs: entry.expiresAt - this.#now() }
      : { count: 0, resetInMs: 0 };
  }

  async reset(key: string): Promise<void> {
    this.#entries.delete(counterKey(key));
  }

  async ping(): Promise<void> {}

  connectionStatus(): string {
    // In process: no connection to lose.
    return 'ready';
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    await this.#writes;
    await this.#log.close();
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(key);
  }
}
