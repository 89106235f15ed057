// Sessions, whole: starting one, rotating its refresh tokens (with reuse detection), ending one or all, listing.
import { createHmac } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { Database, Executor } from '../../db/client.js';
import { NotFound, RefreshTokenInvalid, RefreshTokenReused } from '../../errors.js';
import { decodeCursor, paginate } from '../../lib/cursor.js';
import { randomToken, sha256 } from '../../lib/ids.js';
import type { RequestContext } from '../../lib/request-context.js';
import type { AccessTokens, VerifiedAccessToken } from '../../plugins/access-tokens.js';
import type { Principal } from '../../plugins/authenticate.js';
import type { RevocationService, Revoke } from '../revocations/revocations.service.js';
import { recordSecurityEvent } from '../security-events/security-events.service.js';
import { bumpTokenVersion, lockUser, toUser } from '../users/users.repository.js';
import type { User } from '../users/users.schemas.js';
import {
  findTokenOwner,
  insertRefreshToken,
  insertSession,
  listLiveSessions,
  lockLiveSessionOfUser,
  lockSession,
  revokeSessionRow,
  revokeUserSessions,
  rotateRefreshToken,
} from './sessions.repository.js';
import type { SessionList } from './sessions.schemas.js';

export interface IssuedTokens {
  accessToken: string;
  /** Seconds. */
  expiresIn: number;
  refreshToken: string;
  /** Seconds. */
  refreshExpiresIn: number;
  sessionId: string;
}

/** Whom tokens are minted for: read under the user lock by the transaction that mints them. */
export interface TokenSubject {
  id: string;
  roles: string[];
  /** Carried as `ver`: a role change, logout-all or deletion bumps it and deny-lists every lower one. */
  tokenVersion: number;
}

/** RFC 8176 method names this service issues. */
export type AuthenticationMethod = 'pwd' | 'otp' | 'mfa' | 'pop';

/** `amr` after a password alone, a password and a TOTP or recovery code, and a passkey. */
export const AMR = {
  password: ['pwd'],
  passwordAndOtp: ['pwd', 'otp', 'mfa'],
  passkey: ['pop', 'mfa'],
} as const satisfies Record<string, readonly AuthenticationMethod[]>;

export type SessionEndReason = 'logged_out' | 'session_revoked' | 'refresh_token_reused';

export interface SessionServiceDeps {
  db: Database;
  accessTokens: AccessTokens;
  revocations: RevocationService;
  /** Derives the one child of a refresh token, so every presentation inside the grace interval gets the same. */
  refreshChildKey: Buffer;
  config: Pick<Config, 'refreshTokenTtl' | 'sessionMaxAge' | 'refreshReuseInterval'>;
  clock: Clock;
  log: FastifyBaseLogger;
  /** Told of each reuse detected (metrics), after its revocation committed. */
  onReuseDetected?: () => void;
}

export class SessionService {
  constructor(private readonly deps: SessionServiceDeps) {}

  /**
   * Opens a session for a user the caller holds locked, and issues its first pair. `amr` (RFC 8176) says how the user
   * proved who they are; the session keeps it, so refreshed tokens carry it too.
   */
  async start(
    tx: Executor,
    user: TokenSubject,
    context: RequestContext,
    amr: readonly AuthenticationMethod[] = ['pwd'],
  ): Promise<IssuedTokens> {
    const now = this.deps.clock.now();
    const session = await insertSession(tx, {
      userId: user.id,
      at: new Date(now),
      expiresAt: new Date(now + this.deps.config.sessionMaxAge * 1000),
      ip: context.ip,
      userAgent: context.userAgent,
      amr: [...amr],
    });
    const refreshToken = randomToken();
    const refreshExpiresAt = this.#refreshExpiry(session, now);
    await insertRefreshToken(tx, {
      sessionId: session.id,
      parentId: null,
      tokenHash: sha256(refreshToken),
      issuedAt: new Date(now),
      expiresAt: new Date(refreshExpiresAt),
    });
    return this.#pair(user, session, refreshToken, refreshExpiresAt, now);
  }

  /**
   * Rotation with reuse detection (contract: Refresh rotation and reuse). The common path, a token's first use, is
   * one statement in its own transaction (rotateRefreshToken: the user share-locked, then the session, whose lock
   * serialises every writer of its tokens). A token presented again within the grace interval gets the same child
   * back, and nothing but the session's last use is written; after it, the rotation runs again in a transaction
   * that ends the session. `assertCsrf` (a cookie credential's check; none for a body token) runs before anything
   * is written, on a read without locks: a refresh token never changes session.
   */
  async refresh(
    presented: string,
    context: RequestContext,
    assertCsrf?: (sessionId: string) => void,
  ): Promise<{ user: User; tokens: IssuedTokens }> {
    const { db, revocations, clock, config } = this.deps;
    const tokenHash = sha256(presented);
    if (assertCsrf) {
      const owner = await findTokenOwner(db, tokenHash);
      if (!owner) throw new RefreshTokenInvalid();
      assertCsrf(owner.sessionId);
    }
    const childToken = this.#childOf(presented);
    const now = clock.now();
    const rotation = {
      tokenHash,
      at: new Date(now),
      childHash: sha256(childToken),
      childExpiresBy: new Date(now + config.refreshTokenTtl * 1000),
    };
    const rotated = await rotateRefreshToken(db, rotation);
    if (!rotated) throw new RefreshTokenInvalid();
    // Never negative: another instance's clock may be ahead of ours, and a zero interval must mean no grace at all.
    const sinceFirstUse = rotated.usedAt === null ? 0 : Math.max(0, now - rotated.usedAt.getTime());
    if (rotated.usedAt === null || sinceFirstUse < config.refreshReuseInterval * 1000) {
      // The first use, or the same client racing itself inside the grace interval: the one child, again.
      if (rotated.childExpiresAt === null) throw new RefreshTokenInvalid();
      const session = { id: rotated.sessionId, amr: rotated.amr };
      const tokens = this.#pair(rotated, session, childToken, rotated.childExpiresAt.getTime(), now);
      return { user: toUser(rotated), tokens };
    }
    // A rotated token presented again: assume it was stolen and end the whole session, under the same locks.
    const ended = await revocations.transaction(async (tx, revoke) => {
      const locked = await rotateRefreshToken(tx, rotation);
      if (!locked) return false;
      const session = { id: locked.sessionId, userId: locked.id };
      await this.end(tx, revoke, session, { type: 'refresh_token_reused', context, at: rotation.at });
      return true;
    });
    if (!ended) throw new RefreshTokenInvalid();
    this.deps.onReuseDetected?.();
    throw new RefreshTokenReused();
  }

  /**
   * Ends one locked session: the row and its refresh tokens revoked, the event recorded, and the session's access
   * tokens deny-listed (recorded in the caller's transaction, published after its commit).
   */
  async end(
    tx: Executor,
    revoke: Revoke,
    session: { id: string; userId: string },
    event: { type: SessionEndReason; context: RequestContext; at: Date },
  ): Promise<void> {
    await revokeSessionRow(tx, session.id, event.at);
    await recordSecurityEvent(tx, this.deps.log, {
      type: event.type,
      userId: session.userId,
      context: event.context,
      at: event.at,
      details: { sessionId: session.id },
    });
    await revoke.session(session.id);
  }

  /** Ends every live session of a user the caller holds locked, but one; returns how many ended. */
  async endOthers(
    tx: Executor,
    revoke: Revoke,
    userId: string,
    keepSessionId: string | undefined,
    at: Date,
  ): Promise<number> {
    const revoked = await revokeUserSessions(tx, userId, at, keepSessionId);
    for (const sessionId of revoked) await revoke.session(sessionId);
    return revoked.length;
  }

  /**
   * Ends the session(s) the credentials belong to. Idempotent: credentials already revoked, expired or unknown
   * change nothing and still succeed. A cookie credential must pass the CSRF rule for its session first.
   */
  async logout(
    credentials: {
      accessToken?: { verified: VerifiedAccessToken; assertCsrf?: (sessionId: string) => void };
      refreshToken?: { token: string; assertCsrf?: (sessionId: string) => void };
    },
    context: RequestContext,
  ): Promise<void> {
    const { clock, revocations } = this.deps;
    // The session ends in Postgres first; the deny-list learns of it only after the commit, so a crash anywhere
    // leaves either nothing revoked or everything (the boot rebuild publishes what the crash did not).
    await revocations.transaction(async (tx, revoke) => {
      const sessionIds = new Set<string>();
      const { accessToken, refreshToken } = credentials;
      if (refreshToken) {
        const owner = await findTokenOwner(tx, sha256(refreshToken.token));
        if (owner) {
          refreshToken.assertCsrf?.(owner.sessionId);
          sessionIds.add(owner.sessionId);
        }
      }
      if (accessToken) {
        const { claims } = accessToken.verified;
        accessToken.assertCsrf?.(claims.sid);
        sessionIds.add(claims.sid);
        await revoke.token(claims.jti, claims.exp * 1000);
      }
      const at = new Date(clock.now());
      // Sorted, so two logouts touching the same sessions lock them in the same order.
      for (const sessionId of [...sessionIds].sort()) {
        const session = await lockSession(tx, sessionId);
        if (!session || session.revokedAt) continue;
        await this.end(tx, revoke, session, { type: 'logged_out', context, at });
      }
    });
  }

  /** Every session of the caller, and every access token issued until now, at once. */
  async logoutAll(principal: Principal, context: RequestContext): Promise<void> {
    const { clock, revocations, log } = this.deps;
    await revocations.transaction(async (tx, revoke) => {
      // The user row first: a refresh holding it share-locked commits before the version is bumped, so the token it
      // minted carries the old version.
      await lockUser(tx, principal.userId);
      const minVersion = await bumpTokenVersion(tx, principal.userId);
      const at = new Date(clock.now());
      const ended = await this.endOthers(tx, revoke, principal.userId, undefined, at);
      await recordSecurityEvent(tx, log, {
        type: 'logged_out_all',
        userId: principal.userId,
        context,
        at,
        details: { sessions: ended },
      });
      await revoke.user(principal.userId, minVersion);
    });
  }

  async list(principal: Principal, query: { limit: number; cursor?: string }): Promise<SessionList> {
    const after = decodeCursor(query.cursor);
    const rows = await listLiveSessions(
      this.deps.db,
      principal.userId,
      new Date(this.deps.clock.now()),
      query.limit + 1,
      after,
    );
    const page = paginate(rows, query.limit, (row) => ({ at: row.createdAt, id: row.id }));
    return {
      items: page.rows.map((row) => ({
        id: row.id,
        createdAt: row.createdAt.toISOString(),
        lastUsedAt: row.lastUsedAt.toISOString(),
        expiresAt: row.expiresAt.toISOString(),
        userAgent: row.userAgent,
        ip: row.ip,
        current: row.id === principal.sessionId,
      })),
      nextCursor: page.nextCursor,
    };
  }

  /** Revokes one of the caller's live sessions; anyone else's (or an ended one) is not found. */
  async revoke(principal: Principal, sessionId: string, context: RequestContext): Promise<void> {
    const { clock, revocations } = this.deps;
    await revocations.transaction(async (tx, revoke) => {
      const at = new Date(clock.now());
      const session = await lockLiveSessionOfUser(tx, sessionId, principal.userId, at);
      if (!session) throw new NotFound('Session not found');
      await this.end(tx, revoke, session, { type: 'session_revoked', context, at });
    });
  }

  /** HMAC of the parent under a server secret: only we can make it, and every instance makes the same. */
  #childOf(parent: string): string {
    return createHmac('sha256', this.deps.refreshChildKey).update(parent).digest('base64url');
  }

  /** A refresh token issued now never outlives its session (epoch ms). */
  #refreshExpiry(session: { expiresAt: Date }, now: number): number {
    return Math.min(now + this.deps.config.refreshTokenTtl * 1000, session.expiresAt.getTime());
  }

  #pair(
    user: TokenSubject,
    session: { id: string; amr: string[] },
    refreshToken: string,
    refreshExpiresAt: number,
    now: number,
  ): IssuedTokens {
    const sessionId = session.id;
    const access = this.deps.accessTokens.issue({
      userId: user.id,
      sessionId,
      roles: user.roles,
      tokenVersion: user.tokenVersion,
      amr: session.amr,
    });
    return {
      accessToken: access.token,
      expiresIn: access.expiresIn,
      refreshToken,
      refreshExpiresIn: Math.max(0, Math.floor((refreshExpiresAt - now) / 1000)),
      sessionId,
    };
  }
}
