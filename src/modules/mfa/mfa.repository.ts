// SQL for the second factor: the TOTP factor, recovery codes and the login's second-step challenges.
import { and, eq, isNull, lte, sql } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { mfaChallenges, recoveryCodes, totpFactors } from '../../db/schema.js';

export interface TotpFactorRow {
  userId: string;
  secretSealed: string;
  enabledAt: Date | null;
  lastUsedStep: number | null;
}

const factorColumns = {
  userId: totpFactors.userId,
  secretSealed: totpFactors.secretSealed,
  enabledAt: totpFactors.enabledAt,
  lastUsedStep: totpFactors.lastUsedStep,
};

export async function findTotpFactor(db: Executor, userId: string): Promise<TotpFactorRow | undefined> {
  const [row] = await db.select(factorColumns).from(totpFactors).where(eq(totpFactors.userId, userId));
  return row;
}

/** Row-locked: two requests with the same code are serialised, and the second sees the step used. */
export async function lockTotpFactor(db: Executor, userId: string): Promise<TotpFactorRow | undefined> {
  const [row] = await db.select(factorColumns).from(totpFactors).where(eq(totpFactors.userId, userId)).for('update');
  return row;
}

/** A new, not yet enabled secret: replaces an earlier unfinished setup. */
export async function putPendingTotpFactor(db: Executor, userId: string, secretSealed: string, at: Date) {
  await db
    .insert(totpFactors)
    .values({ userId, secretSealed, createdAt: at })
    .onConflictDoUpdate({
      target: totpFactors.userId,
      set: { secretSealed, createdAt: at, enabledAt: null, lastUsedStep: null },
      // An enabled factor is never replaced by a setup.
      setWhere: isNull(totpFactors.enabledAt),
    });
}

export async function markTotpStepUsed(db: Executor, userId: string, step: number, enabledAt?: Date): Promise<void> {
  await db
    .update(totpFactors)
    .set(enabledAt ? { lastUsedStep: step, enabledAt } : { lastUsedStep: step })
    .where(eq(totpFactors.userId, userId));
}

/** Removes TOTP and the recovery codes; returns whether a factor existed. */
export async function deleteSecondFactor(db: Executor, userId: string): Promise<boolean> {
  await db.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId));
  const deleted = await db
    .delete(totpFactors)
    .where(eq(totpFactors.userId, userId))
    .returning({ userId: totpFactors.userId });
  return deleted.length > 0;
}

/** Replaces the user's recovery codes with these (keyed hashes). */
export async function replaceRecoveryCodes(db: Executor, userId: string, codeHashes: string[], at: Date) {
  await db.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId));
  await db.insert(recoveryCodes).values(codeHashes.map((codeHash) => ({ userId, codeHash, createdAt: at })));
}

/** Uses one unused recovery code of the user, atomically; false when there is none with this hash. */
export async function useRecoveryCode(db: Executor, userId: string, codeHash: string, at: Date): Promise<boolean> {
  const used = await db
    .update(recoveryCodes)
    .set({ usedAt: at })
    .where(and(eq(recoveryCodes.userId, userId), eq(recoveryCodes.codeHash, codeHash), isNull(recoveryCodes.usedAt)))
    .returning({ id: recoveryCodes.id });
  return used.length > 0;
}

export async function countUnusedRecoveryCodes(db: Executor, userId: string): Promise<number> {
  const [row] = await db
    .select({ count: sql<number>`count(*)::int` })
    .from(recoveryCodes)
    .where(and(eq(recoveryCodes.userId, userId), isNull(recoveryCodes.usedAt)));
  return row?.count ?? 0;
}

export interface MfaChallengeRow {
  id: string;
  userId: string;
  passwordHash: string;
  expiresAt: Date;
  failures: number;
  usedAt: Date | null;
}

const challengeColumns = {
  id: mfaChallenges.id,
  userId: mfaChallenges.userId,
  passwordHash: mfaChallenges.passwordHash,
  expiresAt: mfaChallenges.expiresAt,
  failures: mfaChallenges.failures,
  usedAt: mfaChallenges.usedAt,
};

export async function insertMfaChallenge(
  db: Executor,
  values: { userId: string; tokenHash: string; passwordHash: string; at: Date; expiresAt: Date },
): Promise<void> {
  await db.insert(mfaChallenges).values({
    userId: values.userId,
    tokenHash: values.tokenHash,
    passwordHash: values.passwordHash,
    createdAt: values.at,
    expiresAt: values.expiresAt,
  });
}

export async function findMfaChallenge(db: Executor, tokenHash: string): Promise<MfaChallengeRow | undefined> {
  const [row] = await db.select(challengeColumns).from(mfaChallenges).where(eq(mfaChallenges.tokenHash, tokenHash));
  return row;
}

export async function lockMfaChallenge(db: Executor, id: string): Promise<MfaChallengeRow | undefined> {
  const [row] = await db.select(challengeColumns).from(mfaChallenges).where(eq(mfaChallenges.id, id)).for('update');
  return row;
}

export async function markMfaChallengeUsed(db: Executor, id: string, at: Date): Promise<void> {
  await db.update(mfaChallenges).set({ usedAt: at }).where(eq(mfaChallenges.id, id));
}

/** Counts a wrong code; returns the failures so far. */
export async function countMfaFailure(db: Executor, id: string): Promise<number> {
  const [row] = await db
    .update(mfaChallenges)
    .set({ failures: sql`${mfaChallenges.failures} + 1` })
    .where(eq(mfaChallenges.id, id))
    .returning({ failures: mfaChallenges.failures });
  return row?.failures ?? 0;
}

export async function pruneMfaChallenges(db: Executor, now: Date): Promise<number> {
  const deleted = await db
    .delete(mfaChallenges)
    .where(lte(mfaChallenges.expiresAt, now))
    .returning({ id: mfaChallenges.id });
  return deleted.length;
}
