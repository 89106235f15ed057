// Drizzle tables for the whole contract: users, sessions, refresh tokens, action tokens, security events, revocations.
import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

// Millisecond precision everywhere: the contract's same-second rules depend on it.
const at = (name: string) => timestamp(name, { withTimezone: true, precision: 3, mode: 'date' });

export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    email: text('email').notNull(),
    passwordHash: text('password_hash').notNull(),
    name: text('name'),
    roles: text('roles').array().notNull().default(sql`ARRAY['user']::text[]`),
    // Carried in access tokens as `ver`; bumped by a role change, logout-all or deletion, which deny-list every
    // lower version. A counter, not a time: instances whose clocks disagree still agree on it.
    tokenVersion: integer('token_version').notNull().default(0),
    // When the user proved they receive mail at `email` (a verification, reset or email-change link); null: never.
    emailVerifiedAt: at('email_verified_at'),
    createdAt: at('created_at').notNull().defaultNow(),
    updatedAt: at('updated_at').notNull().defaultNow(),
  },
  (table) => [
    // The database, not a prior SELECT, decides that an email is taken, whatever its case.
    uniqueIndex('users_email_lower_key').on(sql`lower(${table.email})`),
    index('users_created_at_id_idx').on(table.createdAt, table.id),
    index('users_admins_idx').on(table.id).where(sql`'admin' = ANY(${table.roles})`),
    check('users_roles_not_empty', sql`cardinality(${table.roles}) > 0`),
  ],
);

export const sessions = pgTable(
  'sessions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: at('created_at').notNull().defaultNow(),
    lastUsedAt: at('last_used_at').notNull().defaultNow(),
    // Absolute lifetime: no refresh extends a session past this.
    expiresAt: at('expires_at').notNull(),
    revokedAt: at('revoked_at'),
    userAgent: text('user_agent'),
    ip: text('ip'),
    // RFC 8176 methods the session was opened with (`pwd`; `otp`, `mfa` after a second factor; `pop` for a passkey):
    // every access token of the session carries them, refreshed ones included.
    amr: text('amr').array().notNull().default(sql`ARRAY['pwd']::text[]`),
  },
  (table) => [
    index('sessions_user_id_created_at_idx').on(table.userId, table.createdAt),
    index('sessions_expires_at_idx').on(table.expiresAt),
    // Housekeeping's other half (revoked beyond retention); partial, as most sessions are never revoked.
    index('sessions_revoked_at_idx')
      .on(table.revokedAt)
      .where(sql`${table.revokedAt} is not null`),
  ],
);

export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    sessionId: uuid('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    parentId: uuid('parent_id'),
    // SHA-256 of the opaque token, base64url. The token itself is never stored.
    tokenHash: text('token_hash').notNull(),
    issuedAt: at('issued_at').notNull().defaultNow(),
    usedAt: at('used_at'),
    expiresAt: at('expires_at').notNull(),
    revokedAt: at('revoked_at'),
  },
  (table) => [
    uniqueIndex('refresh_tokens_token_hash_key').on(table.tokenHash),
    index('refresh_tokens_session_id_idx').on(table.sessionId),
    index('refresh_tokens_expires_at_idx').on(table.expiresAt),
  ],
);

export const actionTokenPurposes = ['verify_email', 'password_reset', 'email_change'] as const;
export type ActionTokenPurpose = (typeof actionTokenPurposes)[number];

/** Single-use tokens mailed in links. A voided token is deleted; a used one stays (used_at) until it expires. */
export const actionTokens = pgTable(
  'action_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    purpose: text('purpose').$type<ActionTokenPurpose>().notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    // The address the link was mailed to: the user's email, or the new one for an email change.
    email: text('email').notNull(),
    // SHA-256 of the opaque token, base64url. The token itself is never stored.
    tokenHash: text('token_hash').notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
    expiresAt: at('expires_at').notNull(),
    usedAt: at('used_at'),
  },
  (table) => [
    uniqueIndex('action_tokens_token_hash_key').on(table.tokenHash),
    index('action_tokens_user_id_purpose_idx').on(table.userId, table.purpose),
    index('action_tokens_expires_at_idx').on(table.expiresAt),
    check('action_tokens_purpose_known', sql`${table.purpose} IN ('verify_email', 'password_reset', 'email_change')`),
  ],
);

/** A user's TOTP factor (RFC 6238). The secret is sealed with AES-256-GCM under DATA_ENCRYPTION_KEY. */
export const totpFactors = pgTable('totp_factors', {
  userId: uuid('user_id')
    .primaryKey()
    .references(() => users.id, { onDelete: 'cascade' }),
  secretSealed: text('secret_sealed').notNull(),
  createdAt: at('created_at').notNull().defaultNow(),
  // Null while set up but not yet confirmed by a first code.
  enabledAt: at('enabled_at'),
  // The last 30-second step whose code was accepted: a code works once, and never an older one.
  lastUsedStep: bigint('last_used_step', { mode: 'number' }),
});

/** Single-use recovery codes, stored as keyed hashes (HMAC under a server secret). */
export const recoveryCodes = pgTable(
  'recovery_codes',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    codeHash: text('code_hash').notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
    usedAt: at('used_at'),
  },
  (table) => [uniqueIndex('recovery_codes_user_id_code_hash_key').on(table.userId, table.codeHash)],
);

/** The second step of a login: an opaque token (stored as SHA-256) that a correct code exchanges for a session. */
export const mfaChallenges = pgTable(
  'mfa_challenges',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull(),
    // The hash the password matched: a password change or reset meanwhile kills the challenge.
    passwordHash: text('password_hash').notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
    expiresAt: at('expires_at').notNull(),
    failures: integer('failures').notNull().default(0),
    usedAt: at('used_at'),
  },
  (table) => [
    uniqueIndex('mfa_challenges_token_hash_key').on(table.tokenHash),
    index('mfa_challenges_expires_at_idx').on(table.expiresAt),
  ],
);

/** WebAuthn credentials (passkeys). */
export const passkeys = pgTable(
  'passkeys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    // The credential id the authenticator chose, base64url.
    credentialId: text('credential_id').notNull(),
    // COSE public key, base64url.
    publicKey: text('public_key').notNull(),
    counter: bigint('counter', { mode: 'number' }).notNull().default(0),
    transports: text('transports').array().notNull().default(sql`ARRAY[]::text[]`),
    deviceType: text('device_type'),
    backedUp: boolean('backed_up').notNull().default(false),
    name: text('name'),
    createdAt: at('created_at').notNull().defaultNow(),
    lastUsedAt: at('last_used_at'),
  },
  (table) => [
    uniqueIndex('passkeys_credential_id_key').on(table.credentialId),
    index('passkeys_user_id_idx').on(table.userId),
  ],
);

/** WebAuthn challenges: kept server-side for 300 s, each used once. */
export const webauthnChallenges = pgTable(
  'webauthn_challenges',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    purpose: text('purpose').$type<'register' | 'login'>().notNull(),
    // The registering user; null for a login (discoverable credentials: the user is learnt from the assertion).
    userId: uuid('user_id').references(() => users.id, { onDelete: 'cascade' }),
    challenge: text('challenge').notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
    expiresAt: at('expires_at').notNull(),
    usedAt: at('used_at'),
  },
  (table) => [
    index('webauthn_challenges_expires_at_idx').on(table.expiresAt),
    // A registration finds its challenge by user; a user's deletion cascades through it.
    index('webauthn_challenges_user_id_idx').on(table.userId),
  ],
);

export const securityEventTypes = [
  'registered',
  'login_succeeded',
  'login_failed',
  'refresh_token_reused',
  'logged_out',
  'logged_out_all',
  'session_revoked',
  'password_changed',
  'roles_changed',
  'user_deleted',
  'rate_limited',
  'verification_sent',
  'email_verified',
  'password_reset_requested',
  'password_reset',
  'email_change_requested',
  'email_changed',
  'mfa_enabled',
  'mfa_disabled',
  'mfa_failed',
  'recovery_code_used',
  'mfa_reset',
  'passkey_added',
  'passkey_removed',
  'passkey_login',
] as const;
export type SecurityEventType = (typeof securityEventTypes)[number];

export const securityEvents = pgTable(
  'security_events',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // No foreign key: events outlive a deleted user, for audit.
    userId: uuid('user_id'),
    type: text('type').$type<SecurityEventType>().notNull(),
    at: at('at').notNull().defaultNow(),
    ip: text('ip'),
    userAgent: text('user_agent'),
    details: jsonb('details').$type<Record<string, unknown>>(),
  },
  (table) => [index('security_events_user_id_at_idx').on(table.userId, table.at, table.id)],
);

export const revocationKinds = ['jti', 'sid', 'sub'] as const;
export type RevocationKind = (typeof revocationKinds)[number];

/** Durable log of deny-list entries: the source of the revocation feed for resource servers. */
export const revocations = pgTable(
  'revocations',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    kind: text('kind').$type<RevocationKind>().notNull(),
    value: text('value').notNull(),
    notBefore: at('not_before'),
    // For `sub`: the lowest token version still valid, so a rebuild of the deny-list restores it.
    minVersion: integer('min_version'),
    expiresAt: at('expires_at').notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
  },
  (table) => [index('revocations_expires_at_idx').on(table.expiresAt)],
);

export const schema = {
  users,
  sessions,
  refreshTokens,
  actionTokens,
  totpFactors,
  recoveryCodes,
  mfaChallenges,
  passkeys,
  webauthnChallenges,
  securityEvents,
  revocations,
};
