// The one writer of the deny-list. `transaction(fn)` runs a Postgres transaction in which `fn` records revocations
// (durable rows, the source of the revocation feed and of any rebuild), and publishes them to the store only after
// the commit: the deny-list never holds what Postgres does not, so an interrupted change is all or nothing.
import type { Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { Database, Executor } from '../../db/client.js';
import type { RevocationKind } from '../../db/schema.js';
import type { DenyEntry, DenyList } from '../../store/deny-list.js';
import { insertRevocation, listLiveRevocations } from './revocations.repository.js';

/** Records revocations inside the transaction; they reach the deny-list once it has committed. */
export interface Revoke {
  /** One access token, until it would have expired anyway (plus the tolerance the verifier grants). */
  token(jti: string, expiresAtMs: number): Promise<void>;
  /** Every access token of a session. */
  session(sessionId: string): Promise<void>;
  /** Every access token of a user whose version is below `minVersion` (just bumped under the user's lock). */
  user(userId: string, minVersion: number): Promise<void>;
}

export class RevocationService {
  constructor(
    private readonly db: Database,
    private readonly denyList: DenyList,
    private readonly config: Pick<Config, 'accessTokenTtl' | 'clockTolerance'>,
    private readonly clock: Clock,
  ) {}

  /** Long enough for every access token issued up to now to have expired. */
  get #maxAccessTokenLifeMs(): number {
    return (this.config.accessTokenTtl + this.config.clockTolerance) * 1000;
  }

  /**
   * Runs `fn` in a transaction, then publishes what it revoked. If publishing fails the change stays committed,
   * the deny-list is rebuilt from Postgres before it is trusted again, and this rejects with a 503.
   */
  async transaction<T>(fn: (tx: Executor, revoke: Revoke) => Promise<T>): Promise<T> {
    const entries: DenyEntry[] = [];
    const result = await this.db.transaction(async (tx) => {
      entries.length = 0;
      return fn(tx, this.#recorder(tx, entries));
    });
    if (entries.length > 0) await this.denyList.publish(entries);
    return result;
  }

  /** Every live entry, for a rebuild of the deny-list. */
  async liveEntries(): Promise<DenyEntry[]> {
    const rows = await listLiveRevocations(this.db, new Date(this.clock.now()));
    return rows.map((row) => ({
      kind: row.kind,
      value: row.value,
      minVersion: row.minVersion,
      expiresAtMs: row.expiresAt.getTime(),
    }));
  }

  #recorder(tx: Executor, entries: DenyEntry[]): Revoke {
    const record = async (kind: RevocationKind, value: string, ttlMs: number, minVersion: number | null) => {
      const now = this.clock.now();
      const expiresAtMs = now + ttlMs;
      await insertRevocation(tx, {
        kind,
        value,
        // For `sub`: the change's time, informational (the feed shows it); the version decides.
        notBefore: kind === 'sub' ? new Date(now) : null,
        minVersion,
        expiresAt: new Date(expiresAtMs),
        createdAt: new Date(now),
      });
      entries.push({ kind, value, minVersion, expiresAtMs });
    };
    return {
      token: async (jti, expiresAtMs) => {
        const ttlMs = expiresAtMs + this.config.clockTolerance * 1000 - this.clock.now();
        if (ttlMs > 0) await record('jti', jti, ttlMs, null);
      },
      session: (sessionId) => record('sid', sessionId, this.#maxAccessTokenLifeMs, null),
      user: (userId, minVersion) => record('sub', userId, this.#maxAccessTokenLifeMs, minVersion),
    };
  }
}
