// The small key-value interface behind the deny-list and rate-limit counters: Redis, or embedded for one process.

export interface RevocationState {
  /** The token's jti is deny-listed (logout). */
  tokenRevoked: boolean;
  /** The token's session is deny-listed (session revoked, refresh reuse). */
  sessionRevoked: boolean;
  /** Tokens of this user issued before this instant (epoch ms) are revoked; null when unset. */
  userNotBefore: number | null;
}

export interface CounterState {
  count: number;
  /** Milliseconds until the window resets (0 when the counter does not exist). */
  resetInMs: number;
}

export interface Store {
  readonly kind: 'redis' | 'embedded';
  revokeToken(jti: string, ttlMs: number): Promise<void>;
  revokeSession(sid: string, ttlMs: number): Promise<void>;
  /** Raises the user's not-before time; never lowers it, so concurrent changes cannot undo each other. */
  revokeUserTokensBefore(sub: string, notBeforeMs: number, ttlMs: number): Promise<void>;
  /** Everything the verifier needs, in one round trip. */
  revocationState(jti: string, sid: string, sub: string): Promise<RevocationState>;
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
  close(): Promise<void>;
}

export const denyKey = {
  token: (jti: string) => `deny:jti:${jti}`,
  session: (sid: string) => `deny:sid:${sid}`,
  user: (sub: string) => `deny:sub:${sub}`,
};
export const counterKey = (key: string) => `count:${key}`;

/** Parses the stored values of the three deny-list keys. */
export function toRevocationState(token: string | null, session: string | null, user: string | null): RevocationState {
  return {
    tokenRevoked: token !== null,
    sessionRevoked: session !== null,
    userNotBefore: user === null ? null : Number(user),
  };
}
