// Pruning: expired or long-revoked sessions (with their refresh tokens), expired refresh tokens, expired revocations,
// expired action tokens, and expired second-step and WebAuthn challenges.
import type { Executor } from '../../db/client.js';
import { pruneActionTokens } from '../accounts/action-tokens.repository.js';
import { pruneMfaChallenges } from '../mfa/mfa.repository.js';
import { pruneWebauthnChallenges } from '../passkeys/passkeys.repository.js';
import { pruneRevocations } from '../revocations/revocations.repository.js';
import { pruneSessions } from './sessions.repository.js';

// Revoked sessions are kept a day, so support can still see them; their tokens are rejected either way.
export const REVOKED_SESSION_RETENTION_MS = 24 * 60 * 60 * 1000;

export interface PruneResult {
  sessions: number;
  refreshTokens: number;
  revocations: number;
  actionTokens: number;
  mfaChallenges: number;
  webauthnChallenges: number;
}

/** Safe on several instances at once: each run only deletes rows that are already dead. */
export async function pruneExpired(db: Executor, now: Date): Promise<PruneResult> {
  const deleted = await pruneSessions(db, now, REVOKED_SESSION_RETENTION_MS);
  return {
    ...deleted,
    revocations: await pruneRevocations(db, now),
    actionTokens: await pruneActionTokens(db, now),
    mfaChallenges: await pruneMfaChallenges(db, now),
    webauthnChallenges: await pruneWebauthnChallenges(db, now),
  };
}
