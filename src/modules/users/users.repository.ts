// SQL for users. Reads project the public columns; only the credential lookup touches the hash.
import { asc, eq, sql } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { isUniqueViolation } from '../../db/errors.js';
import { afterPosition } from '../../db/keyset.js';
import { totpFactors, users } from '../../db/schema.js';
import { runStatement, type Statement } from '../../db/statements.js';
import { EmailTaken } from '../../errors.js';
import type { CursorPosition } from '../../lib/cursor.js';
import type { User } from './users.schemas.js';

const publicColumns = {
  id: users.id,
  email: users.email,
  name: users.name,
  roles: users.roles,
  emailVerifiedAt: users.emailVerifiedAt,
  // Derived, so no second copy of the factor's state can disagree with it.
  mfaEnabled: sql<boolean>`exists (select 1 from ${totpFactors} where ${totpFactors.userId} = ${users.id} and ${totpFactors.enabledAt} is not null)`,
  createdAt: users.createdAt,
  updatedAt: users.updatedAt,
};

export type UserRow = {
  id: string;
  email: string;
  name: string | null;
  roles: string[];
  emailVerifiedAt: Date | null;
  mfaEnabled: boolean;
  createdAt: Date;
  updatedAt: Date;
};

/** A user as the transaction that mints (or revokes) its tokens reads it: with the token version, under a lock. */
export type TokenUserRow = UserRow & { tokenVersion: number };

const tokenColumns = { ...publicColumns, tokenVersion: users.tokenVersion };

export function toUser(row: UserRow): User {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    roles: row.roles,
    emailVerified: row.emailVerifiedAt !== null,
    mfaEnabled: row.mfaEnabled,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** Inserts a user; the unique index on lower(email) decides a race, answered as EMAIL_TAKEN. */
export async function insertUser(
  db: Executor,
  values: {
    email: string;
    passwordHash: string;
    name: string | null;
    roles?: string[];
    /** Set when whoever creates the user vouches for the address (the create-admin command). */
    emailVerified?: boolean;
    at: Date;
  },
): Promise<UserRow> {
  try {
    const [row] = await db
      .insert(users)
      .values({
        email: values.email,
        passwordHash: values.passwordHash,
        name: values.name,
        roles: values.roles ?? ['user'],
        emailVerifiedAt: values.emailVerified ? values.at : null,
        createdAt: values.at,
        updatedAt: values.at,
      })
      .returning(publicColumns);
    return row as UserRow;
  } catch (error) {
    if (isUniqueViolation(error, 'users_email_lower_key')) throw new EmailTaken();
    throw error;
  }
}

export async function findCredentialsByEmail(
  db: Executor,
  email: string,
): Promise<(UserRow & { passwordHash: string }) | undefined> {
  const [row] = await db
    .select({ ...publicColumns, passwordHash: users.passwordHash })
    .from(users)
    .where(eq(sql`lower(${users.email})`, email.toLowerCase()));
  return row;
}

const FIND_USERS_BY_IDS: Statement = {
  name: 'users_find_by_ids',
  text: `SELECT id, email, name, roles, email_verified_at AS "emailVerifiedAt",
      EXISTS (SELECT 1 FROM totp_factors f WHERE f.user_id = users.id AND f.enabled_at IS NOT NULL) AS "mfaEnabled",
      created_at AS "createdAt", updated_at AS "updatedAt"
    FROM users WHERE id = ANY($1::uuid[])`,
};

/**
 * Users by id, as a named statement (see runStatement): GET /users/me's read, the hottest there is, batched across
 * concurrent requests (UserService). The ids must be UUIDs: one that is not fails the whole statement.
 */
export async function findUsersByIdsFast(db: Executor, ids: string[]): Promise<Map<string, UserRow>> {
  const rows = await runStatement<UserRow>(db, FIND_USERS_BY_IDS, [ids]);
  return new Map(rows.map((row) => [row.id, row]));
}

export async function findUserById(db: Executor, id: string): Promise<UserRow | undefined> {
  const [row] = await db.select(publicColumns).from(users).where(eq(users.id, id));
  return row;
}

/** The email and hash of a user, for checking its current password. */
export async function findPasswordById(
  db: Executor,
  id: string,
): Promise<{ email: string; passwordHash: string } | undefined> {
  const [row] = await db
    .select({ email: users.email, passwordHash: users.passwordHash })
    .from(users)
    .where(eq(users.id, id));
  return row;
}

/** `touchedAt` null: a silent rehash that leaves `updatedAt` alone. */
export async function updatePasswordHash(
  db: Executor,
  id: string,
  passwordHash: string,
  touchedAt: Date | null,
): Promise<void> {
  await db
    .update(users)
    .set(touchedAt ? { passwordHash, updatedAt: touchedAt } : { passwordHash })
    .where(eq(users.id, id));
}

/** The user proved they receive mail at their address. Keeps the first proof's time. */
export async function markEmailVerified(db: Executor, id: string, at: Date): Promise<void> {
  await db
    .update(users)
    .set({ emailVerifiedAt: sql`coalesce(${users.emailVerifiedAt}, ${at.toISOString()}::timestamptz)` })
    .where(eq(users.id, id));
}

/** Moves the user to a confirmed new address; the unique index decides a race with a registration (EMAIL_TAKEN). */
export async function updateEmail(db: Executor, id: string, email: string, at: Date): Promise<UserRow> {
  try {
    const [row] = await db
      .update(users)
      .set({ email, emailVerifiedAt: at, updatedAt: at })
      .where(eq(users.id, id))
      .returning(publicColumns);
    if (!row) throw new Error(`no user ${id} to update`);
    return row;
  } catch (error) {
    if (isUniqueViolation(error, 'users_email_lower_key')) throw new EmailTaken();
    throw error;
  }
}

/**
 * The user for minting tokens, share-locked: a concurrent role change waits for this transaction, or this one
 * waits for it and reads the new roles.
 */
/** The user with its hash, locked (`share`: to mint tokens; `update`: to change it too). */
export async function lockCredentials(
  db: Executor,
  id: string,
  mode: 'share' | 'update',
): Promise<(TokenUserRow & { passwordHash: string }) | undefined> {
  const [row] = await db
    .select({ ...tokenColumns, passwordHash: users.passwordHash })
    .from(users)
    .where(eq(users.id, id))
    .for(mode);
  return row;
}

/** The user's hash, row-locked for a password change. */
export async function lockPasswordHash(db: Executor, id: string): Promise<string | undefined> {
  const [row] = await db.select({ passwordHash: users.passwordHash }).from(users).where(eq(users.id, id)).for('update');
  return row?.passwordHash;
}

/** Users oldest first, keyset-paginated on (created_at, id). */
export async function listUsers(db: Executor, limit: number, after: CursorPosition | undefined): Promise<UserRow[]> {
  return db
    .select(publicColumns)
    .from(users)
    .where(afterPosition(users.createdAt, users.id, after, 'asc'))
    .orderBy(asc(users.createdAt), asc(users.id))
    .limit(limit);
}

export async function lockUser(db: Executor, id: string): Promise<TokenUserRow | undefined> {
  const [row] = await db.select(tokenColumns).from(users).where(eq(users.id, id)).for('update');
  return row;
}

/** Bumps the user's token version (the row is locked by the caller); returns the new one, the lowest still valid. */
export async function bumpTokenVersion(db: Executor, id: string): Promise<number> {
  const [row] = await db
    .update(users)
    .set({ tokenVersion: sql`${users.tokenVersion} + 1` })
    .where(eq(users.id, id))
    .returning({ tokenVersion: users.tokenVersion });
  if (!row) throw new Error(`no user ${id} to bump`);
  return row.tokenVersion;
}

// Any constant: it only has to be the same for every change that can remove an admin.
const ADMIN_SET_LOCK = 7_342_016_002;

/**
 * Serialises every change that could remove an admin (demotion, deletion) for the rest of the transaction, so two
 * admins demoting each other at once cannot both succeed.
 */
export async function lockAdminSet(db: Executor): Promise<void> {
  await db.execute(sql`SELECT pg_advisory_xact_lock(${ADMIN_SET_LOCK})`);
}

export async function countAdmins(db: Executor): Promise<number> {
  const [row] = await db
    .select({ count: sql<number>`count(*)::int` })
    .from(users)
    .where(sql`'admin' = ANY(${users.roles})`);
  return row?.count ?? 0;
}

/** Replaces the roles and bumps the token version: tokens carrying the old roles carry the old version. */
export async function updateRoles(db: Executor, id: string, roles: string[], at: Date): Promise<TokenUserRow> {
  const [row] = await db
    .update(users)
    .set({ roles, updatedAt: at, tokenVersion: sql`${users.tokenVersion} + 1` })
    .where(eq(users.id, id))
    .returning(tokenColumns);
  return row as TokenUserRow;
}

/** Deletes the user; sessions and refresh tokens go by cascade, security events stay. */
export async function deleteUser(db: Executor, id: string): Promise<void> {
  await db.delete(users).where(eq(users.id, id));
}
