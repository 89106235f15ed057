// The deny-list as the verifier trusts it: entries are published to the store after the Postgres transaction that
// records them commits; a store that lost them (Redis restarted empty, a failed publish) is rebuilt from the live
// rows of `revocations` before this instance trusts it again, and until then requests fail closed (503).
import type { FastifyBaseLogger } from 'fastify';
import { DependencyUnavailable } from '../errors.js';
import type { RevocationState, Store } from './store.js';

export interface DenyEntry {
  kind: 'jti' | 'sid' | 'sub';
  value: string;
  /** For `sub`: the lowest token version still valid. */
  minVersion: number | null;
  expiresAtMs: number;
}

/** Every live entry, as Postgres holds it. */
export type DenyEntrySource = () => Promise<DenyEntry[]>;

// Long enough for a rebuild of every live row; if its holder dies, another instance takes over after this.
const REBUILD_LOCK_MS = 15_000;
const RETRY_MS = 1_000;

export class DenyList {
  #source: DenyEntrySource | undefined;
  // Each failed publish bumps #failures; a rebuild clears only the failures that happened before it started.
  // Stale from the start: a process killed between a commit and its publish left Postgres ahead of the store.
  #failures = 1;
  #syncedFailures = 0;
  #rebuilding: Promise<boolean> | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** Where a rebuild reads the live entries (the revocations module, once it is registered). */
  setSource(source: DenyEntrySource): void {
    this.#source = source;
  }

  get stale(): boolean {
    return this.#syncedFailures !== this.#failures;
  }

  /** The verifier's read: one round trip while the store is in step; a rebuild first when it is not. */
  async state(jti: string, sid: string, sub: string): Promise<RevocationState> {
    const state = await this.store.revocationState(jti, sid, sub);
    if (state.synced && !this.stale) return state;
    if (!(await this.resync())) throw rebuilding();
    const again = await this.store.revocationState(jti, sid, sub);
    if (!again.synced) throw rebuilding();
    return again;
  }

  /**
   * Writes committed entries to the store. A failure is not lost: this instance rebuilds from Postgres (in the
   * background, and before its next verification), and the caller answers 503 so the client retries.
   */
  async publish(entries: readonly DenyEntry[]): Promise<void> {
    try {
      await Promise.all(entries.map((entry) => this.#write(entry)));
    } catch (error) {
      this.#failures += 1;
      this.log.error(
        { err: error },
        'deny-list write failed after its commit; rebuilding from Postgres before trusting the store again',
      );
      this.#scheduleRetry();
      throw error instanceof DependencyUnavailable ? error : new DependencyUnavailable('redis', error);
    }
  }

  /**
   * Rebuilds the store from Postgres under the store's rebuild lock, then sets the epoch. Resolves false when
   * another instance holds the lock (its rebuild will set the epoch); rejects when the store or Postgres is down.
   */
  resync(): Promise<boolean> {
    this.#rebuilding ??= this.#rebuild().finally(() => {
      this.#rebuilding = undefined;
    });
    return this.#rebuilding;
  }

  /** At boot: rebuild now if the store answers, else keep retrying in the background. */
  async start(): Promise<void> {
    const done = await this.resync().catch((error: unknown) => {
      this.log.warn({ err: error }, 'deny-list rebuild failed; requests fail closed until it succeeds');
      return false;
    });
    if (!done || this.stale) this.#scheduleRetry();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    await this.#rebuilding?.catch(() => undefined);
  }

  async #rebuild(): Promise<boolean> {
    const failures = this.#failures;
    const source = this.#source;
    if (!source) return false;
    const release = await this.store.lockRebuild(REBUILD_LOCK_MS);
    if (!release) return false;
    try {
      // Read after the lock, and after every failure counted above: each of their rows has committed.
      const entries = await source();
      await Promise.all(entries.map((entry) => this.#write(entry)));
      await this.store.markSynced();
      this.log.info({ entries: entries.length }, 'deny-list rebuilt from Postgres');
    } finally {
      await release().catch(() => undefined);
    }
    this.#syncedFailures = failures;
    return true;
  }

  /** Idempotent: SET with the entry's remaining life for jti and sid, raise-only for sub. */
  async #write(entry: DenyEntry): Promise<void> {
    const ttlMs = entry.expiresAtMs - this.now();
    if (ttlMs <= 0) return;
    if (entry.kind === 'jti') await this.store.revokeToken(entry.value, ttlMs);
    else if (entry.kind === 'sid') await this.store.revokeSession(entry.value, ttlMs);
    else await this.store.raiseUserMinVersion(entry.value, entry.minVersion ?? 0, ttlMs);
  }

  #scheduleRetry(): void {
    if (this.#retry || this.#closed) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.resync()
        .then((done) => {
          if (!done || this.stale) this.#scheduleRetry();
        })
        .catch(() => this.#scheduleRetry());
    }, RETRY_MS);
    this.#retry.unref();
  }
}

const rebuilding = () => new DependencyUnavailable('redis', new Error('the deny-list is being rebuilt'));
