// SQL for sessions and their refresh tokens (stored as SHA-256 only).
// Lock order, everywhere: the user row, then the session row, then its refresh tokens, so concurrent writers
// (refresh, logout, logout-all, password change, role change, deletion) never deadlock.
import { and, desc, eq, gt, isNull, lt, ne, or } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { afterPosition } from '../../db/keyset.js';
import { refreshTokens, sessions } from '../../db/schema.js';
import type { CursorPosition } from '../../lib/cursor.js';

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

export async function lockSession(db: Executor, sessionId: string): Promise<SessionRow | undefined> {
  const [row] = await db.select().from(sessions).where(eq(sessions.id, sessionId)).for('update');
  return row;
}

/** A refresh token by hash, without locking: the caller holds its session locked. */
export async function findRefreshToken(db: Executor, tokenHash: string): Promise<RefreshTokenRow | undefined> {
  const [row] = await db.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, tokenHash));
  return row;
}

export async function lockRefreshToken(db: Executor, tokenHash: string): Promise<RefreshTokenRow | undefined> {
  const [row] = await db.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, tokenHash)).for('update');
  return row;
}

export async function markRefreshTokenUsed(db: Executor, id: string, at: Date): Promise<void> {
  await db.update(refreshTokens).set({ usedAt: at }).where(eq(refreshTokens.id, id));
}

export async function touchSession(db: Executor, id: string, at: Date): Promise<void> {
  await db.update(sessions).set({ lastUsedAt: at }).where(eq(sessions.id, id));
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
