// SQL for sessions and their refresh tokens (stored as SHA-256 only).
// Lock order, everywhere: the user row, then the session row, then its refresh tokens, so concurrent writers
// (refresh, logout, logout-all, password change, role change, deletion) never deadlock.
import { and, desc, eq, gt, isNull, lt, ne } from 'drizzle-orm';
import { DELETE_BATCH_SIZE, deleteInBatches } from '../../db/batched-delete.js';
import type { Executor } from '../../db/client.js';
import { afterPosition } from '../../db/keyset.js';
import { refreshTokens, sessions } from '../../db/schema.js';
import { runStatement, type Statement } from '../../db/statements.js';
import type { CursorPosition } from '../../lib/cursor.js';
import type { TokenUserRow } from '../users/users.repository.js';

export interface NewSession {
  userId: string;
  at: Date;
  expiresAt: Date;
  ip: string | null;
  userAgent: string | null;
  amr: string[];
}

export type SessionRow = typeof sessions.$inferSelect;

/** A live session of the user: neither revoked nor past its absolute expiry. */
const liveSessionOf = (userId: string, now: Date) =>
  and(eq(sessions.userId, userId), isNull(sessions.revokedAt), gt(sessions.expiresAt, now));
export type RefreshTokenRow = typeof refreshTokens.$inferSelect;

export async function insertSession(
  db: Executor,
  session: NewSession,
): Promise<{ id: string; expiresAt: Date; amr: string[] }> {
  const [row] = await db
    .insert(sessions)
    .values({
      userId: session.userId,
      createdAt: session.at,
      lastUsedAt: session.at,
      expiresAt: session.expiresAt,
      ip: session.ip,
      userAgent: session.userAgent,
      amr: session.amr,
    })
    .returning({ id: sessions.id, expiresAt: sessions.expiresAt, amr: sessions.amr });
  return row as { id: string; expiresAt: Date; amr: string[] };
}

export interface NewRefreshToken {
  sessionId: string;
  parentId: string | null;
  tokenHash: string;
  issuedAt: Date;
  expiresAt: Date;
}

export async function insertRefreshToken(db: Executor, token: NewRefreshToken): Promise<{ id: string }> {
  const [row] = await db.insert(refreshTokens).values(token).returning({ id: refreshTokens.id });
  return row as { id: string };
}

/** The session and user a refresh token belongs to, without locking (the caller locks in order next). */
export async function findTokenOwner(
  db: Executor,
  tokenHash: string,
): Promise<{ sessionId: string; userId: string } | undefined> {
  const [row] = await db
    .select({ sessionId: refreshTokens.sessionId, userId: sessions.userId })
    .from(refreshTokens)
    .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
    .where(eq(refreshTokens.tokenHash, tokenHash));
  return row;
}

// The rotation's statements (see runStatement): the common path of a refresh is BEGIN, these three, COMMIT.
const LOCK_TOKEN_USER: Statement = {
  name: 'refresh_lock_token_user',
  text: `SELECT u.id, u.email, u.name, u.roles, u.email_verified_at AS "emailVerifiedAt",
      EXISTS (SELECT 1 FROM totp_factors f WHERE f.user_id = u.id AND f.enabled_at IS NOT NULL) AS "mfaEnabled",
      u.created_at AS "createdAt", u.updated_at AS "updatedAt", u.token_version AS "tokenVersion",
      t.session_id AS "sessionId"
    FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
    WHERE t.token_hash = $1
    FOR SHARE OF u`,
};

const TOUCH_LIVE_SESSION: Statement = {
  name: 'refresh_touch_live_session',
  text: `UPDATE sessions SET last_used_at = $2
    WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2
    RETURNING id, user_id AS "userId", expires_at AS "expiresAt", amr`,
};

const ROTATE_REFRESH_TOKEN: Statement = {
  name: 'refresh_rotate_token',
  text: `WITH presented AS (
      SELECT id, used_at, expires_at FROM refresh_tokens
      WHERE token_hash = $1 AND session_id = $2 AND revoked_at IS NULL AND expires_at > $3
    ), first_use AS (
      UPDATE refresh_tokens SET used_at = $3 FROM presented
      WHERE refresh_tokens.id = presented.id AND presented.used_at IS NULL
      RETURNING refresh_tokens.id
    ), child AS (
      INSERT INTO refresh_tokens (session_id, parent_id, token_hash, issued_at, expires_at)
      SELECT $2::uuid, first_use.id, $4::text, $3::timestamptz, $5::timestamptz FROM first_use
      RETURNING id
    )
    SELECT presented.id, presented.used_at AS "usedAt", presented.expires_at AS "expiresAt",
      (SELECT id FROM child) AS "childId"
    FROM presented`,
};

/**
 * The first step of a rotation: the user a refresh token belongs to, share-locked (first in the lock order), with
 * the token's session id. One statement for what would be two reads.
 */
export async function lockTokenUser(
  db: Executor,
  tokenHash: string,
): Promise<(TokenUserRow & { sessionId: string }) | undefined> {
  const [row] = await runStatement<TokenUserRow & { sessionId: string }>(db, LOCK_TOKEN_USER, [tokenHash]);
  return row;
}

/**
 * Locks a live session by writing its last use: the write takes the row lock the rotation needs, so no separate
 * SELECT ... FOR UPDATE. Nothing (and nothing written) when the session is revoked or past its expiry.
 */
export async function touchLiveSession(
  db: Executor,
  id: string,
  at: Date,
): Promise<{ id: string; userId: string; expiresAt: Date; amr: string[] } | undefined> {
  const [row] = await runStatement<{ id: string; userId: string; expiresAt: Date; amr: string[] }>(
    db,
    TOUCH_LIVE_SESSION,
    [id, at],
  );
  return row;
}

export interface PresentedRefreshToken {
  id: string;
  /** When it was first used, before this statement: null means this rotation is its first use. */
  usedAt: Date | null;
  expiresAt: Date;
  /** The child this statement inserted (first use only). */
  childId: string | null;
}

/**
 * The rest of a rotation in one statement, for a session the caller holds locked (that lock serialises every
 * writer of its tokens, so the token needs no lock of its own and the read sees the latest commit): reads the
 * presented token if live, and on its first use marks it used and inserts its child. Nothing when the token is
 * unknown, of another session, revoked or expired.
 */
export async function rotateRefreshToken(
  db: Executor,
  presented: { tokenHash: string; sessionId: string; at: Date },
  child: { tokenHash: string; expiresAt: Date },
): Promise<PresentedRefreshToken | undefined> {
  const { tokenHash, sessionId, at } = presented;
  const [row] = await runStatement<PresentedRefreshToken>(db, ROTATE_REFRESH_TOKEN, [
    tokenHash,
    sessionId,
    at,
    child.tokenHash,
    child.expiresAt,
  ]);
  return row;
}

export async function lockSession(db: Executor, sessionId: string): Promise<SessionRow | undefined> {
  const [row] = await db.select().from(sessions).where(eq(sessions.id, sessionId)).for('update');
  return row;
}

/** A refresh token by hash, without locking: the caller holds its session locked. */
export async function findRefreshToken(db: Executor, tokenHash: string): Promise<RefreshTokenRow | undefined> {
  const [row] = await db.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, tokenHash));
  return row;
}

/** Revokes a (locked) session and every refresh token in it. */
export async function revokeSessionRow(db: Executor, id: string, at: Date): Promise<void> {
  await db
    .update(sessions)
    .set({ revokedAt: at })
    .where(and(eq(sessions.id, id), isNull(sessions.revokedAt)));
  await db
    .update(refreshTokens)
    .set({ revokedAt: at })
    .where(and(eq(refreshTokens.sessionId, id), isNull(refreshTokens.revokedAt)));
}

/** Locks and revokes the user's live sessions, except one; returns the ids revoked. */
export async function revokeUserSessions(
  db: Executor,
  userId: string,
  at: Date,
  exceptSessionId?: string,
): Promise<string[]> {
  const live = await db
    .select({ id: sessions.id })
    .from(sessions)
    .where(and(liveSessionOf(userId, at), exceptSessionId ? ne(sessions.id, exceptSessionId) : undefined))
    .orderBy(sessions.id)
    .for('update');
  for (const { id } of live) await revokeSessionRow(db, id, at);
  return live.map(({ id }) => id);
}

/** A live (not revoked, not expired) session of the user, locked. */
export async function lockLiveSessionOfUser(
  db: Executor,
  sessionId: string,
  userId: string,
  now: Date,
): Promise<SessionRow | undefined> {
  const [row] = await db
    .select()
    .from(sessions)
    .where(and(eq(sessions.id, sessionId), liveSessionOf(userId, now)))
    .for('update');
  return row;
}

/** Live sessions, newest first, keyset-paginated on (created_at, id). */
export async function listLiveSessions(
  db: Executor,
  userId: string,
  now: Date,
  limit: number,
  after: CursorPosition | undefined,
): Promise<SessionRow[]> {
  return db
    .select()
    .from(sessions)
    .where(and(liveSessionOf(userId, now), afterPosition(sessions.createdAt, sessions.id, after, 'desc')))
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
    .limit(limit);
}

/**
 * Deletes what can no longer matter: expired refresh tokens first (so deleting a session cascades to few), then
 * sessions expired or revoked over `retentionMs` ago (their refresh tokens go with them), in batches. Used tokens of
 * live sessions stay until they expire, for reuse detection.
 */
export async function pruneSessions(
  db: Executor,
  now: Date,
  retentionMs: number,
  batchSize = DELETE_BATCH_SIZE,
): Promise<{ sessions: number; refreshTokens: number }> {
  const cutoff = new Date(now.getTime() - retentionMs);
  const deletedTokens = await deleteInBatches(db, refreshTokens, lt(refreshTokens.expiresAt, now), batchSize);
  // Two conditions, two passes: each is planned on its own index (an OR would scan every session).
  const expired = await deleteInBatches(db, sessions, lt(sessions.expiresAt, now), batchSize);
  const revoked = await deleteInBatches(db, sessions, lt(sessions.revokedAt, cutoff), batchSize);
  return { sessions: expired + revoked, refreshTokens: deletedTokens };
}
