// Pruning: expired or long-revoked sessions (with their refresh tokens), expired refresh tokens, expired revocations.
import type { Clock } from '../../clock.js';
import type { Database } from '../../db/client.js';
import type { RevocationService } from '../revocations/revocations.service.js';
import { pruneSessions } from './sessions.repository.js';

// Revoked sessions are kept a day, so support can still see them; their tokens are rejected either way.
export const REVOKED_SESSION_RETENTION_MS = 24 * 60 * 60 * 1000;

export interface PruneResult {
  sessions: number;
  refreshTokens: number;
  revocations: number;
}

export async function pruneExpired(db: Database, revocations: RevocationService, clock: Clock): Promise<PruneResult> {
  const now = new Date(clock.now());
  const deleted = await pruneSessions(db, now, REVOKED_SESSION_RETENTION_MS);
  return { ...deleted, revocations: await revocations.prune(db) };
}
