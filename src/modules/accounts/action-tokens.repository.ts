// SQL for action tokens: the single-use links mailed for verification, password reset and email change.
import { and, eq, inArray, isNull, lte, ne } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { type ActionTokenPurpose, actionTokens } from '../../db/schema.js';

export interface ActionTokenRow {
  id: string;
  purpose: ActionTokenPurpose;
  userId: string;
  email: string;
  expiresAt: Date;
  usedAt: Date | null;
}

const columns = {
  id: actionTokens.id,
  purpose: actionTokens.purpose,
  userId: actionTokens.userId,
  email: actionTokens.email,
  expiresAt: actionTokens.expiresAt,
  usedAt: actionTokens.usedAt,
};

export async function insertActionToken(
  db: Executor,
  values: { purpose: ActionTokenPurpose; userId: string; email: string; tokenHash: string; at: Date; expiresAt: Date },
): Promise<string> {
  const [row] = await db
    .insert(actionTokens)
    .values({
      purpose: values.purpose,
      userId: values.userId,
      email: values.email,
      tokenHash: values.tokenHash,
      createdAt: values.at,
      expiresAt: values.expiresAt,
    })
    .returning({ id: actionTokens.id });
  if (!row) throw new Error('action token not inserted');
  return row.id;
}

/** The token with this hash, unlocked: to learn whose it is before locking that user. */
export async function findActionToken(db: Executor, tokenHash: string): Promise<ActionTokenRow | undefined> {
  const [row] = await db.select(columns).from(actionTokens).where(eq(actionTokens.tokenHash, tokenHash));
  return row;
}

/** The token row-locked (after its user): two presentations of one token are serialised, and only one uses it. */
export async function lockActionToken(db: Executor, tokenHash: string): Promise<ActionTokenRow | undefined> {
  const [row] = await db.select(columns).from(actionTokens).where(eq(actionTokens.tokenHash, tokenHash)).for('update');
  return row;
}

export async function markActionTokenUsed(db: Executor, id: string, at: Date): Promise<void> {
  await db.update(actionTokens).set({ usedAt: at }).where(eq(actionTokens.id, id));
}

/** Voids the user's unused links of these purposes (all of them when omitted), but `exceptId`. */
export async function deleteLiveActionTokens(
  db: Executor,
  userId: string,
  purposes?: readonly ActionTokenPurpose[],
  exceptId?: string,
): Promise<number> {
  const deleted = await db
    .delete(actionTokens)
    .where(
      and(
        eq(actionTokens.userId, userId),
        isNull(actionTokens.usedAt),
        purposes ? inArray(actionTokens.purpose, [...purposes]) : undefined,
        exceptId ? ne(actionTokens.id, exceptId) : undefined,
      ),
    )
    .returning({ id: actionTokens.id });
  return deleted.length;
}

/** Voids one link (its mail was never delivered). */
export async function deleteActionToken(db: Executor, id: string): Promise<void> {
  await db.delete(actionTokens).where(eq(actionTokens.id, id));
}

/** Deletes expired links, used or not: after expiry a used one proves nothing more. */
export async function pruneActionTokens(db: Executor, now: Date): Promise<number> {
  const deleted = await db
    .delete(actionTokens)
    .where(lte(actionTokens.expiresAt, now))
    .returning({ id: actionTokens.id });
  return deleted.length;
}
