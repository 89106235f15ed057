// User administration: listing, role changes that take effect at once, deletion, and the first admin.
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../clock.js';
import type { Database, Executor } from '../../db/client.js';
import { LastAdmin, NotFound, TokenRevoked } from '../../errors.js';
import { BatchedLookup } from '../../lib/batched-lookup.js';
import { decodeCursor, paginate } from '../../lib/cursor.js';
import { isUuid } from '../../lib/ids.js';
import type { RequestContext } from '../../lib/request-context.js';
import type { RoleName } from '../../plugins/authorize.js';
import type { Passwords } from '../../plugins/passwords.js';
import type { RevocationService } from '../revocations/revocations.service.js';
import type { SecurityEventList } from '../security-events/security-events.schemas.js';
import { listOwnSecurityEvents, recordSecurityEvent } from '../security-events/security-events.service.js';
import {
  countAdmins,
  deleteUser,
  findCredentialsByEmail,
  findUserById,
  findUsersByIdsFast,
  insertUser,
  listUsers,
  lockAdminSet,
  lockUser,
  type TokenUserRow,
  toUser,
  type UserRow,
  updateRoles,
} from './users.repository.js';
import type { User, UserList } from './users.schemas.js';

export interface UserServiceDeps {
  db: Database;
  revocations: RevocationService;
  clock: Clock;
  log: FastifyBaseLogger;
}

const isAdmin = (roles: readonly string[]) => roles.includes('admin');

export class UserService {
  constructor(private readonly deps: UserServiceDeps) {}

  // GET /users/me's reads, coalesced: requests that reach it in the same turn of the event loop share one query.
  readonly #usersById = new BatchedLookup<UserRow>((ids) => findUsersByIdsFast(this.deps.db, ids));

  /** The caller. A deleted user's tokens are deny-listed; should one slip through, it is revoked, not a 404. */
  async me(id: string): Promise<User> {
    // Checked here, not by Postgres: a malformed id in a batch would fail the other callers' reads with it.
    const row = isUuid(id) ? await this.#usersById.load(id) : undefined;
    if (!row) throw new TokenRevoked();
    return toUser(row);
  }

  events(userId: string, query: { limit: number; cursor?: string }): Promise<SecurityEventList> {
    return listOwnSecurityEvents(this.deps.db, userId, query);
  }

  async get(id: string): Promise<User> {
    const row = await findUserById(this.deps.db, id);
    if (!row) throw new NotFound('User not found');
    return toUser(row);
  }

  async list(query: { limit: number; cursor?: string }): Promise<UserList> {
    const rows = await listUsers(this.deps.db, query.limit + 1, decodeCursor(query.cursor));
    const page = paginate(rows, query.limit, (row) => ({ at: row.createdAt, id: row.id }));
    return { items: page.rows.map(toUser), nextCursor: page.nextCursor };
  }

  /**
   * Replaces the user's roles. Every access token issued before the change is revoked at once, so stale roles
   * never outlive it; the next refresh mints the new roles.
   */
  async setRoles(actorId: string, userId: string, roles: RoleName[], context: RequestContext): Promise<User> {
    const { clock, revocations, log } = this.deps;
    return revocations.transaction(async (tx, revoke) => {
      const target = await this.#lockForChange(tx, userId, !isAdmin(roles));
      const from = [...target.roles].sort();
      const to = [...roles].sort();
      if (from.join() === to.join()) return toUser(target);
      const at = new Date(clock.now());
      // Bumps the token version: every token minted with the old roles carries a lower one.
      const updated = await updateRoles(tx, userId, roles, at);
      await recordSecurityEvent(tx, log, {
        type: 'roles_changed',
        userId,
        context,
        at,
        details: { from, to, by: actorId },
      });
      await revoke.user(userId, updated.tokenVersion);
      return toUser(updated);
    });
  }

  /** Deletes the user and its sessions; its tokens are rejected at once; its security events are kept. */
  async delete(actorId: string, userId: string, context: RequestContext): Promise<void> {
    const { clock, revocations, log } = this.deps;
    await revocations.transaction(async (tx, revoke) => {
      const target = await this.#lockForChange(tx, userId, true);
      const at = new Date(clock.now());
      await deleteUser(tx, userId);
      await recordSecurityEvent(tx, log, { type: 'user_deleted', userId, context, at, details: { by: actorId } });
      // The row is gone; the deny-list entry (and its durable row) carry the version every token is below.
      await revoke.user(userId, target.tokenVersion + 1);
    });
  }

  /** Locks the target; when the change would take admin away from it, first checks another admin remains. */
  async #lockForChange(tx: Executor, userId: string, removesAdmin: boolean): Promise<TokenUserRow> {
    if (removesAdmin) await lockAdminSet(tx);
    const target = await lockUser(tx, userId);
    if (!target) throw new NotFound('User not found');
    if (removesAdmin && isAdmin(target.roles) && (await countAdmins(tx)) <= 1) throw new LastAdmin();
    return target;
  }
}

/**
 * `npm run create-admin`: creates the user with the admin role, or promotes an existing one (its password is
 * left alone). Returns what happened.
 */
export async function createOrPromoteAdmin(
  deps: Pick<UserServiceDeps, 'db' | 'clock' | 'log'> & { passwords: Passwords },
  email: string,
  password: string | undefined,
): Promise<{ user: User; outcome: 'created' | 'promoted' | 'already-admin' }> {
  const { db, passwords, clock, log } = deps;
  const existing = await findCredentialsByEmail(db, email);
  if (existing) {
    if (isAdmin(existing.roles)) return { user: toUser(existing), outcome: 'already-admin' };
    return db.transaction(async (tx) => {
      const at = new Date(clock.now());
      const roles = [...existing.roles, 'admin'];
      const updated = await updateRoles(tx, existing.id, roles, at);
      await recordSecurityEvent(tx, log, {
        type: 'roles_changed',
        userId: existing.id,
        context: null,
        at,
        details: { from: existing.roles, to: roles, by: 'create-admin' },
      });
      return { user: toUser(updated), outcome: 'promoted' };
    });
  }
  if (!password) throw new Error('ADMIN_PASSWORD is required to create a new admin');
  passwords.assertAcceptable(password);
  const passwordHash = await passwords.hash(password);
  return db.transaction(async (tx) => {
    const at = new Date(clock.now());
    const row = await insertUser(tx, {
      email,
      passwordHash,
      name: null,
      roles: ['user', 'admin'],
      emailVerified: true,
      at,
    });
    await recordSecurityEvent(tx, log, {
      type: 'registered',
      userId: row.id,
      context: null,
      at,
      details: { by: 'create-admin' },
    });
    return { user: toUser(row), outcome: 'created' };
  });
}
