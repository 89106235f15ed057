// The one place that writes the deny-list: Redis (or the embedded store) for the verifier, plus a durable row for
// the revocation feed. Called inside the caller's transaction, last, so a store failure rolls the change back.
import type { Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { Executor } from '../../db/client.js';
import type { RevocationKind } from '../../db/schema.js';
import type { Store } from '../../store/store.js';
import { insertRevocation } from './revocations.repository.js';

export class RevocationService {
  constructor(
    private readonly store: Store,
    private readonly config: Pick<Config, 'accessTokenTtl' | 'clockTolerance'>,
    private readonly clock: Clock,
  ) {}

  /** Long enough for every access token issued up to now to have expired. */
  get #maxAccessTokenLifeMs(): number {
    return (this.config.accessTokenTtl + this.config.clockTolerance) * 1000;
  }

  /** One access token, until it would have expired anyway (plus the tolerance the verifier grants). */
  async revokeToken(db: Executor, jti: string, expiresAtMs: number): Promise<void> {
    const ttlMs = expiresAtMs + this.config.clockTolerance * 1000 - this.clock.now();
    if (ttlMs <= 0) return;
    await this.#record(db, 'jti', jti, null, ttlMs);
    await this.store.revokeToken(jti, ttlMs);
  }

  /** Every access token of a session. */
  async revokeSession(db: Executor, sessionId: string): Promise<void> {
    const ttlMs = this.#maxAccessTokenLifeMs;
    await this.#record(db, 'sid', sessionId, null, ttlMs);
    await this.store.revokeSession(sessionId, ttlMs);
  }

  /** Every access token of a user issued before `notBeforeMs`. */
  async revokeUserTokensBefore(db: Executor, userId: string, notBeforeMs: number): Promise<void> {
    const ttlMs = this.#maxAccessTokenLifeMs;
    await this.#record(db, 'sub', userId, new Date(notBeforeMs), ttlMs);
    await this.store.revokeUserTokensBefore(userId, notBeforeMs, ttlMs);
  }

  async #record(
    db: Executor,
    kind: RevocationKind,
    value: string,
    notBefore: Date | null,
    ttlMs: number,
  ): Promise<void> {
    const now = this.clock.now();
    await insertRevocation(db, { kind, value, notBefore, expiresAt: new Date(now + ttlMs), createdAt: new Date(now) });
  }
}
