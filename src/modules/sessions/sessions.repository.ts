// SQL for sessions and their refresh tokens (stored as SHA-256 only).
// Lock order, everywhere: the user row, then the session row, then its refresh tokens, so concurrent writers
// (refresh, logout, logout-all, password change, role change, deletion) never deadlock.
import { and, desc, eq, gt, isNull, lt, ne, or, sql } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { afterPosition } from '../../db/keyset.js';
import { refreshTokens, sessions, users } from '../../db/schema.js';
import type { CursorPosition } from '../../lib/cursor.js';
import { type TokenUserRow, tokenColumns } from '../users/users.repository.js';

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

/**
 * The first step of a rotation: the user a refresh token belongs to, share-locked (first in the lock order), with
 * the token's session id. One statement for what would be two reads.
 */
export async function lockTokenUser(
  db: Executor,
  tokenHash: string,
): Promise<(TokenUserRow & { sessionId: string }) | undefined> {
  const [row] = await db
    .select({ ...tokenColumns, sessionId: refreshTokens.sessionId })
    .from(refreshTokens)
    .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(eq(refreshTokens.tokenHash, tokenHash))
    .for('share', { of: users });
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
  const [row] = await db
    .update(sessions)
    .set({ lastUsedAt: at })
    .where(and(eq(sessions.id, id), isNull(sessions.revokedAt), gt(sessions.expiresAt, at)))
    .returning({ id: sessions.id, userId: sessions.userId, expiresAt: sessions.expiresAt, amr: sessions.amr });
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
  const result = await db.execute(sql`
    WITH presented AS (
      SELECT id, used_at, expires_at FROM refresh_tokens
      WHERE token_hash = ${tokenHash} AND session_id = ${sessionId} AND revoked_at IS NULL AND expires_at > ${at}
    ), first_use AS (
      UPDATE refresh_tokens SET used_at = ${at} FROM presented
      WHERE refresh_tokens.id = presented.id AND presented.used_at IS NULL
      RETURNING refresh_tokens.id
    ), child AS (
      INSERT INTO refresh_tokens (session_id, parent_id, token_hash, issued_at, expires_at)
      SELECT ${sessionId}::uuid, first_use.id, ${child.tokenHash}, ${at}::timestamptz, ${child.expiresAt}::timestamptz
      FROM first_use
      RETURNING id
    )
    SELECT presented.id, presented.used_at, presented.expires_at, (SELECT id FROM child) AS child_id FROM presented`);
  const [row] = (result as unknown as { rows: Record<string, unknown>[] }).rows;
  if (!row) return undefined;
  return {
    id: row.id as string,
    usedAt: row.used_at === null ? null : new Date(row.used_at as string | Date),
    expiresAt: new Date(row.expires_at as string | Date),
    childId: (row.child_id as string | null) ?? null,
  };
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
 * Deletes what can no longer matter: sessions expired or revoked over `retentionMs` ago (their refresh tokens go
 * with them), and expired refresh tokens. Used tokens of live sessions stay until they expire, for reuse detection.
 */
export async function pruneSessions(
  db: Executor,
  now: Date,
  retentionMs: number,
): Promise<{ sessions: number; refreshTokens: number }> {
  const cutoff = new Date(now.getTime() - retentionMs);
  const deletedSessions = await db
    .delete(sessions)
    .where(or(lt(sessions.expiresAt, now), lt(sessions.revokedAt, cutoff)))
    .returning({ id: sessions.id });
  const deletedTokens = await db
    .delete(refreshTokens)
    .where(lt(refreshTokens.expiresAt, now))
    .returning({ id: refreshTokens.id });
  return { sessions: deletedSessions.length, refreshTokens: deletedTokens.length };
}
