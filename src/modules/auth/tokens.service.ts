// Issues and refreshes token pairs: the access token, and the opaque refresh token whose SHA-256 alone is stored.
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { Database, Executor } from '../../db/client.js';
import { RefreshTokenInvalid, RefreshTokenReused } from '../../errors.js';
import { randomToken, sha256 } from '../../lib/ids.js';
import type { RequestContext } from '../../lib/request-context.js';
import type { AccessTokens } from '../../plugins/access-tokens.js';
import type { RevocationService } from '../revocations/revocations.service.js';
import {
  findTokenOwner,
  insertRefreshToken,
  insertSession,
  lockRefreshToken,
  lockSession,
  markRefreshTokenUsed,
  touchSession,
} from '../sessions/sessions.repository.js';
import { endSession } from '../sessions/sessions.service.js';
import { findUserForTokens, toUser } from '../users/users.repository.js';
import type { User } from '../users/users.schemas.js';

export interface IssuedTokens {
  accessToken: string;
  /** Seconds. */
  expiresIn: number;
  refreshToken: string;
  /** Seconds. */
  refreshExpiresIn: number;
  /** The double-submit value for cookie clients. */
  csrfToken: string;
  sessionId: string;
}

export interface TokenSubject {
  id: string;
  roles: string[];
}

export interface TokenServiceDeps {
  db: Database;
  accessTokens: AccessTokens;
  revocations: RevocationService;
  config: Pick<Config, 'refreshTokenTtl' | 'sessionMaxAge' | 'refreshReuseInterval'>;
  clock: Clock;
  log: FastifyBaseLogger;
}

type RefreshOutcome = { kind: 'issued'; user: User; tokens: IssuedTokens } | { kind: 'invalid' } | { kind: 'reused' };

export class TokenService {
  constructor(private readonly deps: TokenServiceDeps) {}

  /** Opens a session and issues its first pair. */
  async startSession(db: Executor, user: TokenSubject, context: RequestContext): Promise<IssuedTokens> {
    const now = this.deps.clock.now();
    const session = await insertSession(db, {
      userId: user.id,
      at: new Date(now),
      expiresAt: new Date(now + this.deps.config.sessionMaxAge * 1000),
      ip: context.ip,
      userAgent: context.userAgent,
    });
    return this.#issue(db, user, session, null);
  }

  /**
   * Rotation with reuse detection (contract: Refresh rotation and reuse). Locks in the one order every session
   * writer uses: the user row (shared: a role change or logout-all waits, or is waited for), then the session row,
   * then the token row, so concurrent presentations of one token are serialised without deadlocks.
   */
  async refresh(presented: string, context: RequestContext): Promise<{ user: User; tokens: IssuedTokens }> {
    const { db, clock, config, revocations, log } = this.deps;
    const tokenHash = sha256(presented);
    const outcome = await db.transaction(async (tx): Promise<RefreshOutcome> => {
      const owner = await findTokenOwner(tx, tokenHash);
      const user = owner ? await findUserForTokens(tx, owner.userId) : undefined;
      const session = user && owner ? await lockSession(tx, owner.sessionId) : undefined;
      const token = session ? await lockRefreshToken(tx, tokenHash) : undefined;
      const now = clock.now();
      if (
        !user ||
        !session ||
        !token ||
        session.revokedAt ||
        token.revokedAt ||
        session.expiresAt.getTime() <= now ||
        token.expiresAt.getTime() <= now
      ) {
        return { kind: 'invalid' };
      }
      const at = new Date(now);
      if (token.usedAt) {
        const withinGrace = now - token.usedAt.getTime() < config.refreshReuseInterval * 1000;
        if (!withinGrace) {
          // A rotated token presented again: assume it was stolen and end the whole session.
          await endSession(tx, { revocations, log }, session, { type: 'refresh_token_reused', context, at });
          return { kind: 'reused' };
        }
        // Inside the grace interval: the same client racing itself. Another pair, nothing revoked.
      } else {
        await markRefreshTokenUsed(tx, token.id, at);
      }
      await touchSession(tx, session.id, at);
      const tokens = await this.#issue(tx, user, session, token.id);
      return { kind: 'issued', user: toUser(user), tokens };
    });
    if (outcome.kind === 'invalid') throw new RefreshTokenInvalid();
    if (outcome.kind === 'reused') throw new RefreshTokenReused();
    return outcome;
  }

  /** Issues a pair in a session; the refresh token never outlives the session. */
  async #issue(
    db: Executor,
    user: TokenSubject,
    session: { id: string; expiresAt: Date },
    parentId: string | null,
  ): Promise<IssuedTokens> {
    const now = this.deps.clock.now();
    const refreshExpiresAt = Math.min(now + this.deps.config.refreshTokenTtl * 1000, session.expiresAt.getTime());
    const refreshToken = randomToken();
    await insertRefreshToken(db, {
      sessionId: session.id,
      parentId,
      tokenHash: sha256(refreshToken),
      issuedAt: new Date(now),
      expiresAt: new Date(refreshExpiresAt),
    });
    const access = this.deps.accessTokens.issue({ userId: user.id, sessionId: session.id, roles: user.roles });
    return {
      accessToken: access.token,
      expiresIn: access.expiresIn,
      refreshToken,
      refreshExpiresIn: Math.max(0, Math.floor((refreshExpiresAt - now) / 1000)),
      csrfToken: randomToken(),
      sessionId: session.id,
    };
  }
}
