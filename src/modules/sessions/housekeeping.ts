// Pruning: expired or long-revoked sessions (with their refresh tokens), expired refresh tokens, expired revocations.
import { lt } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { revocations } from '../../db/schema.js';
import { pruneSessions } from './sessions.repository.js';

// Revoked sessions are kept a day, so support can still see them; their tokens are rejected either way.
export const REVOKED_SESSION_RETENTION_MS = 24 * 60 * 60 * 1000;

export interface PruneResult {
  sessions: number;
  refreshTokens: number;
  revocations: number;
}

/** Needs only the database: `npm run prune` calls it without building the app. */
export async function pruneExpired(db: Executor, now: Date): Promise<PruneResult> {
  const deleted = await pruneSessions(db, now, REVOKED_SESSION_RETENTION_MS);
  const expired = await db.delete(revocations).where(lt(revocations.expiresAt, now)).returning({ id: revocations.id });
  return { ...deleted, revocations: expired.length };
}
