// The small key-value interface behind the deny-list and rate-limit counters: Redis, or embedded for one process.

export interface RevocationState {
  /** The token's jti is deny-listed (logout). */
  tokenRevoked: boolean;
  /** The token's session is deny-listed (session revoked, refresh reuse). */
  sessionRevoked: boolean;
  /** Tokens of this user whose version (`ver`) is below this are revoked; null when unset. */
  userMinVersion: number | null;
  /**
   * The deny-list's epoch is present: this store holds every entry written since it was last rebuilt from Postgres.
   * False when Redis lost its data (a restart without persistence, a flush) or never had the deny-list.
   */
  synced: boolean;
}

/** What `maxmemory-policy` allows: `noeviction` is safe, anything else may evict deny-list keys. */
export type EvictionCheck = { policy: string; safe: boolean } | { policy: null; reason: string };

export interface CounterState {
  count: number;
  /** Milliseconds until the window resets (0 when the counter does not exist). */
  resetInMs: number;
}

export interface Store {
  readonly kind: 'redis' | 'embedded';
  revokeToken(jti: string, ttlMs: number): Promise<void>;
  revokeSession(sid: string, ttlMs: number): Promise<void>;
  /** Raises the user's minimum token version; never lowers it, so concurrent changes cannot undo each other. */
  raiseUserMinVersion(sub: string, minVersion: number, ttlMs: number): Promise<void>;
  /** Everything the verifier needs, the epoch included, in one round trip. */
  revocationState(jti: string, sid: string, sub: string): Promise<RevocationState>;
  /**
   * Marks the deny-list complete (after a rebuild); `synced` is true from then on until the data is lost. On Redis,
   * also until this instance reconnects (a failover may have lost writes the epoch still vouches for), and only if
   * it did not reconnect since `lockRebuild`.
   */
  markSynced(): Promise<void>;
  /** Takes the rebuild lock for `ttlMs` if nobody holds it; returns its release, or null when it is taken. */
  lockRebuild(ttlMs: number): Promise<(() => Promise<void>) | null>;
  /** Whether the server may evict keys (Redis `maxmemory-policy`). */
  checkEviction(): Promise<EvictionCheck>;
  /** Adds one to a fixed-window counter, starting the window on the first hit. */
  hit(key: string, windowMs: number): Promise<CounterState>;
  /**
   * Takes one back from a counter (a reserved slot that turned out not to count), keeping its window; a counter
   * that would reach 0 is deleted, and one that does not exist stays absent. Returns the count left.
   */
  release(key: string): Promise<number>;
  /** Reads a counter without adding to it. */
  peek(key: string): Promise<CounterState>;
  /** Deletes a counter (e.g. failures after a successful login). */
  reset(key: string): Promise<void>;
  ping(): Promise<void>;
  /** The connection's state, for metrics: ioredis' `status` (ready, connecting, reconnecting, end, ...). */
  connectionStatus(): string;
  close(): Promise<void>;
}

/**
 * Every deny-list key shares the hash tag `{deny}`, so on a Redis Cluster they all live in one slot:
 * - the verifier's read (three entries and the epoch) stays one MGET, one round trip; per-user tags would spread the
 *   entries, but the epoch is global, so each request would need a second, cross-slot read (a pipeline to two nodes);
 * - above all, the epoch sits on the same node as the entries it vouches for: a shard that restarts empty loses both
 *   together, and the verifier notices. With the entries spread over shards, losing one shard would go unseen.
 * The cost: the deny-list is on one shard (the counters, the write-heavy part, still spread). It is small (entries
 * live at most an access token's life) and an MGET of four keys is cheap, so one shard carries it easily.
 * The tag follows the key prefix (`auth:{deny}:jti:...`); a prefix with its own `{...}` pins every key to its slot,
 * which stays correct. Renamed from `deny:*` with the epoch: a store written by an older version has no `{deny}:epoch`,
 * so the new layout is rebuilt from Postgres before it is trusted (the old keys expire on their own).
 */
export const denyKey = {
  token: (jti: string) => `{deny}:jti:${jti}`,
  session: (sid: string) => `{deny}:sid:${sid}`,
  user: (sub: string) => `{deny}:sub:${sub}`,
  /** No TTL: present exactly while the store holds the whole deny-list. */
  epoch: '{deny}:epoch',
  rebuildLock: '{deny}:rebuild-lock',
};
// Single-key commands and scripts only: no tag needed, so counters spread over the cluster's shards.
export const counterKey = (key: string) => `count:${key}`;

/** Parses the stored values of the three deny-list keys and the epoch. */
export function toRevocationState(
  token: string | null,
  session: string | null,
  user: string | null,
  epoch: string | null,
): RevocationState {
  return {
    tokenRevoked: token !== null,
    sessionRevoked: session !== null,
    userMinVersion: user === null ? null : Number(user),
    synced: epoch !== null,
  };
}
