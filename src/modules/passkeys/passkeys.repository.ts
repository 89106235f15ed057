// SQL for passkeys (WebAuthn credentials) and their ceremonies' challenges.
import { and, desc, eq, lte } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { afterPosition } from '../../db/keyset.js';
import { passkeys, webauthnChallenges } from '../../db/schema.js';
import type { CursorPosition } from '../../lib/cursor.js';

export type PasskeyRow = typeof passkeys.$inferSelect;
export type ChallengePurpose = 'register' | 'login';

export interface ChallengeRow {
  id: string;
  purpose: ChallengePurpose;
  userId: string | null;
  challenge: string;
  expiresAt: Date;
  usedAt: Date | null;
}

const challengeColumns = {
  id: webauthnChallenges.id,
  purpose: webauthnChallenges.purpose,
  userId: webauthnChallenges.userId,
  challenge: webauthnChallenges.challenge,
  expiresAt: webauthnChallenges.expiresAt,
  usedAt: webauthnChallenges.usedAt,
};

export async function insertChallenge(
  db: Executor,
  values: { purpose: ChallengePurpose; userId: string | null; challenge: string; at: Date; expiresAt: Date },
): Promise<string> {
  const [row] = await db
    .insert(webauthnChallenges)
    .values({
      purpose: values.purpose,
      userId: values.userId,
      challenge: values.challenge,
      createdAt: values.at,
      expiresAt: values.expiresAt,
    })
    .returning({ id: webauthnChallenges.id });
  if (!row) throw new Error('insert into webauthn_challenges returned no row');
  return row.id;
}

/** A registration challenge of the user, by its value, row-locked: two presentations of it are serialised. */
export async function lockRegistrationChallenge(
  db: Executor,
  userId: string,
  challenge: string,
): Promise<ChallengeRow | undefined> {
  const [row] = await db
    .select(challengeColumns)
    .from(webauthnChallenges)
    .where(
      and(
        eq(webauthnChallenges.userId, userId),
        eq(webauthnChallenges.purpose, 'register'),
        eq(webauthnChallenges.challenge, challenge),
      ),
    )
    .for('update');
  return row;
}

/** A login challenge by id, row-locked. */
export async function lockLoginChallenge(db: Executor, id: string): Promise<ChallengeRow | undefined> {
  const [row] = await db
    .select(challengeColumns)
    .from(webauthnChallenges)
    .where(and(eq(webauthnChallenges.id, id), eq(webauthnChallenges.purpose, 'login')))
    .for('update');
  return row;
}

export async function markChallengeUsed(db: Executor, id: string, at: Date): Promise<void> {
  await db.update(webauthnChallenges).set({ usedAt: at }).where(eq(webauthnChallenges.id, id));
}

export async function pruneWebauthnChallenges(db: Executor, now: Date): Promise<number> {
  const deleted = await db
    .delete(webauthnChallenges)
    .where(lte(webauthnChallenges.expiresAt, now))
    .returning({ id: webauthnChallenges.id });
  return deleted.length;
}

/** The user's credentials, for `excludeCredentials`. */
export async function listCredentialDescriptors(
  db: Executor,
  userId: string,
): Promise<{ credentialId: string; transports: string[] }[]> {
  return db
    .select({ credentialId: passkeys.credentialId, transports: passkeys.transports })
    .from(passkeys)
    .where(eq(passkeys.userId, userId))
    .orderBy(desc(passkeys.createdAt));
}

/** Inserts a passkey; undefined when that credential id is already registered (to anyone). */
export async function insertPasskey(
  db: Executor,
  values: {
    userId: string;
    credentialId: string;
    publicKey: string;
    counter: number;
    transports: string[];
    deviceType: string;
    backedUp: boolean;
    name: string | null;
    at: Date;
  },
): Promise<PasskeyRow | undefined> {
  const [row] = await db
    .insert(passkeys)
    .values({
      userId: values.userId,
      credentialId: values.credentialId,
      publicKey: values.publicKey,
      counter: values.counter,
      transports: values.transports,
      deviceType: values.deviceType,
      backedUp: values.backedUp,
      name: values.name,
      createdAt: values.at,
    })
    .onConflictDoNothing({ target: passkeys.credentialId })
    .returning();
  return row;
}

export async function findPasskeyByCredentialId(db: Executor, credentialId: string): Promise<PasskeyRow | undefined> {
  const [row] = await db.select().from(passkeys).where(eq(passkeys.credentialId, credentialId));
  return row;
}

export async function lockPasskey(db: Executor, id: string): Promise<PasskeyRow | undefined> {
  const [row] = await db.select().from(passkeys).where(eq(passkeys.id, id)).for('update');
  return row;
}

export async function recordPasskeyUse(
  db: Executor,
  id: string,
  values: { counter: number; backedUp: boolean; at: Date },
): Promise<void> {
  await db
    .update(passkeys)
    .set({ counter: values.counter, backedUp: values.backedUp, lastUsedAt: values.at })
    .where(eq(passkeys.id, id));
}

/** The user's passkeys, newest first, keyset-paginated on (created_at, id). */
export async function listPasskeys(
  db: Executor,
  userId: string,
  limit: number,
  after: CursorPosition | undefined,
): Promise<PasskeyRow[]> {
  return db
    .select()
    .from(passkeys)
    .where(and(eq(passkeys.userId, userId), afterPosition(passkeys.createdAt, passkeys.id, after, 'desc')))
    .orderBy(desc(passkeys.createdAt), desc(passkeys.id))
    .limit(limit);
}

/** Deletes one passkey of the user; false when the user has none with that id. */
export async function deletePasskey(db: Executor, userId: string, id: string): Promise<boolean> {
  const deleted = await db
    .delete(passkeys)
    .where(and(eq(passkeys.id, id), eq(passkeys.userId, userId)))
    .returning({ id: passkeys.id });
  return deleted.length > 0;
}
