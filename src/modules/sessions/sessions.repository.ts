// SQL for sessions and their refresh tokens (stored as SHA-256 only).
import type { Executor } from '../../db/client.js';
import { refreshTokens, sessions } from '../../db/schema.js';

export interface NewSession {
  userId: string;
  at: Date;
  expiresAt: Date;
  ip: string | null;
  userAgent: string | null;
}

export async function insertSession(db: Executor, session: NewSession): Promise<{ id: string; expiresAt: Date }> {
  const [row] = await db
    .insert(sessions)
    .values({
      userId: session.userId,
      createdAt: session.at,
      lastUsedAt: session.at,
      expiresAt: session.expiresAt,
      ip: session.ip,
      userAgent: session.userAgent,
    })
    .returning({ id: sessions.id, expiresAt: sessions.expiresAt });
  return row as { id: string; expiresAt: Date };
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
