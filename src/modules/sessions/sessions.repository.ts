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

// The whole rotation, in SQL: migrations/0006_rotate_refresh_token.sql (its comment says what it locks and returns).
const ROTATE_REFRESH_TOKEN: Statement = {
  name: 'rotate_refresh_token',
  text: 'SELECT * FROM rotate_refresh_token($1, $2, $3, $4)',
};

export interface RotatedRefreshToken extends TokenUserRow {
  sessionId: string;
  /** The session's, carried into the access token. */
  amr: string[];
  /** When the presented token was first used, before this call: null means this call was its first use. */
  usedAt: Date | null;
  /** The child's expiry: the one this call inserted, or the live one its first use made; null when that is gone. */
  childExpiresAt: Date | null;
}

/**
 * Rotates a refresh token: share-locks its user, locks its live session (writing its last use), and on the token's
 * first use marks it used and inserts its child. One statement, so one round trip on its own (it commits at once)
 * and, inside a transaction, locks held to its end. Nothing when the token is unknown, revoked or expired, or its
 * session is.
 */
export async function rotateRefreshToken(
  db: Executor,
  rotation: { tokenHash: string; at: Date; childHash: string; childExpiresBy: Date },
): Promise<RotatedRefreshToken | undefined> {
  const { tokenHash, at, childHash, childExpiresBy } = rotation;
  const [row] = await runStatement<RotatedRefreshToken>(db, ROTATE_REFRESH_TOKEN, [
    tokenHash,
    at,
    childHash,
    childExpiresBy,
  ]);
  return row;
}

export async function lockSession(db: Executor, sessionId: string): Promise<SessionRow | undefined> {
  const [row] = await db.select().from(sessions).where(eq(sessions.id, sessionId)).for('update');
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
