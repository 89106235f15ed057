// Ending sessions (logout, logout-all, revoking one, password change) and listing them.
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../clock.js';
import type { Database, Executor } from '../../db/client.js';
import { InvalidCredentials, NotFound } from '../../errors.js';
import { decodeCursor, paginate } from '../../lib/cursor.js';
import { sha256 } from '../../lib/ids.js';
import type { RequestContext } from '../../lib/request-context.js';
import type { VerifiedAccessToken } from '../../plugins/access-tokens.js';
import type { Principal } from '../../plugins/authenticate.js';
import type { Passwords } from '../auth/passwords.js';
import type { RevocationService } from '../revocations/revocations.service.js';
import { recordSecurityEvent } from '../security-events/security-events.service.js';
import {
  findPasswordHash,
  lockPasswordHash,
  lockUser,
  setTokensValidAfter,
  updatePasswordHash,
} from '../users/users.repository.js';
import {
  findTokenOwner,
  listLiveSessions,
  lockLiveSessionOfUser,
  lockSession,
  revokeSessionRow,
  revokeUserSessions,
} from './sessions.repository.js';
import type { SessionList } from './sessions.schemas.js';

/**
 * Ends one locked session: the row and its refresh tokens revoked, the event recorded, and the session's access
 * tokens deny-listed, all in the caller's transaction.
 */
export async function endSession(
  tx: Executor,
  deps: { revocations: RevocationService; log: FastifyBaseLogger },
  session: { id: string; userId: string },
  event: { type: 'logged_out' | 'session_revoked' | 'refresh_token_reused'; context: RequestContext; at: Date },
): Promise<void> {
  await revokeSessionRow(tx, session.id, event.at);
  await recordSecurityEvent(tx, deps.log, {
    type: event.type,
    userId: session.userId,
    context: event.context,
    at: event.at,
    details: { sessionId: session.id },
  });
  await deps.revocations.revokeSession(tx, session.id);
}

export interface SessionServiceDeps {
  db: Database;
  passwords: Passwords;
  revocations: RevocationService;
  clock: Clock;
  log: FastifyBaseLogger;
}

export class SessionService {
  constructor(private readonly deps: SessionServiceDeps) {}

  /**
   * Ends the session(s) the credentials belong to. Idempotent: credentials already revoked, expired or unknown
   * change nothing and still succeed.
   */
  async logout(
    credentials: { accessToken?: VerifiedAccessToken; refreshToken?: string },
    context: RequestContext,
  ): Promise<void> {
    const { db, clock, revocations, log } = this.deps;
    await db.transaction(async (tx) => {
      const sessionIds = new Set<string>();
      if (credentials.refreshToken) {
        const owner = await findTokenOwner(tx, sha256(credentials.refreshToken));
        if (owner) sessionIds.add(owner.sessionId);
      }
      const { accessToken } = credentials;
      if (accessToken) {
        sessionIds.add(accessToken.claims.sid);
        await revocations.revokeToken(tx, accessToken.claims.jti, accessToken.claims.exp * 1000);
      }
      const at = new Date(clock.now());
      // Sorted, so two logouts touching the same sessions lock them in the same order.
      for (const sessionId of [...sessionIds].sort()) {
        const session = await lockSession(tx, sessionId);
        if (!session || session.revokedAt) continue;
        await endSession(tx, { revocations, log }, session, { type: 'logged_out', context, at });
      }
    });
  }

  /** Every session of the caller, and every access token issued until now, at once. */
  async logoutAll(principal: Principal, context: RequestContext): Promise<void> {
    const { db, clock, revocations, log } = this.deps;
    await db.transaction(async (tx) => {
      // The user row first: a refresh holding it share-locked commits before the not-before time is read, so the
      // token it minted is older than that time.
      await lockUser(tx, principal.userId);
      const now = clock.now();
      const at = new Date(now);
      await setTokensValidAfter(tx, principal.userId, at);
      const revoked = await revokeUserSessions(tx, principal.userId, at);
      await recordSecurityEvent(tx, log, {
        type: 'logged_out_all',
        userId: principal.userId,
        context,
        at,
        details: { sessions: revoked.length },
      });
      await revocations.revokeUserTokensBefore(tx, principal.userId, now);
      // And each session by id, so no token of these sessions survives, whenever it was minted.
      for (const sessionId of revoked) await revocations.revokeSession(tx, sessionId);
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
    const { db, clock, revocations, log } = this.deps;
    await db.transaction(async (tx) => {
      const at = new Date(clock.now());
      const session = await lockLiveSessionOfUser(tx, sessionId, principal.userId, at);
      if (!session) throw new NotFound('Session not found');
      await endSession(tx, { revocations, log }, session, { type: 'session_revoked', context, at });
    });
  }

  /** Checks the current password, sets the new one, and ends every other session; the current one stays. */
  async changePassword(
    principal: Principal,
    input: { currentPassword: string; newPassword: string },
    context: RequestContext,
  ): Promise<void> {
    const { db, passwords, clock, revocations, log } = this.deps;
    const storedHash = await findPasswordHash(db, principal.userId);
    if (!storedHash || !(await passwords.verify(storedHash, input.currentPassword))) throw new InvalidCredentials();
    passwords.assertAcceptable(input.newPassword);
    const newHash = await passwords.hash(input.newPassword);
    await db.transaction(async (tx) => {
      // A concurrent change that committed since the check above wins; this one must prove the password again.
      if ((await lockPasswordHash(tx, principal.userId)) !== storedHash) throw new InvalidCredentials();
      const at = new Date(clock.now());
      await updatePasswordHash(tx, principal.userId, newHash, at);
      const revoked = await revokeUserSessions(tx, principal.userId, at, principal.sessionId);
      await recordSecurityEvent(tx, log, {
        type: 'password_changed',
        userId: principal.userId,
        context,
        at,
        details: { sessionsRevoked: revoked.length },
      });
      for (const sessionId of revoked) await revocations.revokeSession(tx, sessionId);
    });
  }
}
