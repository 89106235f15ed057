// Identity: registration, login and the password change, in transactions, with their security events.
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../clock.js';
import type { EmailVerification } from '../../config.js';
import type { Database } from '../../db/client.js';
import { EmailNotVerified, InvalidCredentials, rateLimited } from '../../errors.js';
import { randomToken, sha256 } from '../../lib/ids.js';
import type { RequestContext } from '../../lib/request-context.js';
import type { Principal } from '../../plugins/authenticate.js';
import type { Passwords } from '../../plugins/passwords.js';
import { deleteLiveActionTokens } from '../accounts/action-tokens.repository.js';
import { insertMfaChallenge } from '../mfa/mfa.repository.js';
import type { RevocationService } from '../revocations/revocations.service.js';
import { recordSecurityEvent } from '../security-events/security-events.service.js';
import type { IssuedTokens, SessionService } from '../sessions/sessions.service.js';
import {
  findCredentialsByEmail,
  findPasswordById,
  insertUser,
  lockCredentials,
  lockPasswordHash,
  toUser,
  updatePasswordHash,
} from '../users/users.repository.js';
import type { User } from '../users/users.schemas.js';
import { giveBackOnError, LOGIN_FAILURE_WINDOW_MS, type LoginThrottle } from './login-throttle.js';

export interface AuthServiceDeps {
  db: Database;
  passwords: Passwords;
  sessions: SessionService;
  revocations: RevocationService;
  throttle: LoginThrottle;
  /** `required`: a login of a user whose email is unverified is refused (after its password was checked). */
  emailVerification: EmailVerification;
  clock: Clock;
  log: FastifyBaseLogger;
}

/** The second step of a login lives this long (contract: `mfaExpiresIn`). */
export const MFA_CHALLENGE_TTL_SECONDS = 300;

/** A login either opens a session, or (TOTP enabled) asks for the second step and issues nothing yet. */
export type LoginOutcome =
  | { kind: 'session'; user: User; tokens: IssuedTokens }
  | { kind: 'mfa'; mfaToken: string; expiresIn: number };

/** Told of each new user after its transaction committed (e.g. to mail a verification link). */
export type RegistrationListener = (user: User, context: RequestContext) => void;

export const normalizeEmail = (email: string) => email.trim().toLowerCase();

export class AuthService {
  readonly #registrationListeners: RegistrationListener[] = [];

  constructor(private readonly deps: AuthServiceDeps) {}

  onRegistered(listener: RegistrationListener): void {
    this.#registrationListeners.push(listener);
  }

  async register(
    input: { email: string; password: string; name?: string | null },
    context: RequestContext,
  ): Promise<User> {
    const { db, passwords, clock, log } = this.deps;
    passwords.assertAcceptable(input.password);
    const passwordHash = await passwords.hash(input.password);
    const name = input.name?.trim() || null;
    const user = await db.transaction(async (tx) => {
      const at = new Date(clock.now());
      const row = await insertUser(tx, { email: normalizeEmail(input.email), passwordHash, name, at });
      await recordSecurityEvent(tx, log, { type: 'registered', userId: row.id, context, at });
      return toUser(row);
    });
    for (const listener of this.#registrationListeners) listener(user, context);
    return user;
  }

  /**
   * One answer, INVALID_CREDENTIALS, for an unknown email and a wrong password, in the same time. The password is
   * checked outside any transaction (argon2 is slow), in a failure slot reserved before it; the session is issued
   * only if the user, re-read under its lock, still has the hash that was verified, and with the roles of that read.
   */
  async login(input: { email: string; password: string }, context: RequestContext): Promise<LoginOutcome> {
    const { db, passwords, sessions, throttle, emailVerification, clock, log } = this.deps;
    const email = normalizeEmail(input.email);
    // Reserved before the password is checked, so while a limit holds even the right password gets 429.
    const reservation = await throttle.reserveLogin(email, context.ip);
    if (reservation.limited) {
      const target = await findCredentialsByEmail(db, email);
      await this.#recordRateLimited(target?.id ?? null, context, reservation.limit, LOGIN_FAILURE_WINDOW_MS);
      throw rateLimited(reservation.retryAfter);
    }
    const { slot } = reservation;
    const { account, valid } = await giveBackOnError(slot, async () => {
      const found = await findCredentialsByEmail(db, email);
      const matches = found
        ? await passwords.verify(found.passwordHash, input.password)
        : await passwords.verifyDummy(input.password);
      return { account: found, valid: matches };
    });
    if (!account || !valid) {
      // The slot stays spent: this was a failure.
      await recordSecurityEvent(db, log, {
        type: 'login_failed',
        userId: account?.id ?? null,
        context,
        at: new Date(clock.now()),
        details: { email, reason: account ? 'wrong_password' : 'unknown_email' },
      });
      throw new InvalidCredentials();
    }
    // With TOTP the login is not complete yet: give the slot back without clearing the budgets, or a new mfaToken
    // would wipe the wrong codes of the last one (they are failed logins too). The second step clears them.
    await (account.mfaEnabled ? slot.release() : slot.succeeded());
    // Upgrade hashes made with weaker parameters while the plain password is at hand.
    const rehash = passwords.needsRehash(account.passwordHash) ? await passwords.hash(input.password) : undefined;
    const issued = await db.transaction(async (tx) => {
      // Locked for the rest of the transaction: a role change, password change or deletion waits, or was first.
      const current = await lockCredentials(tx, account.id, rehash ? 'update' : 'share');
      if (!current || current.passwordHash !== account.passwordHash) return undefined;
      // Only now, with the password proven: the answer tells nothing to someone without it.
      if (emailVerification === 'required' && current.emailVerifiedAt === null) throw new EmailNotVerified();
      const at = new Date(clock.now());
      if (rehash) await updatePasswordHash(tx, account.id, rehash, null);
      if (current.mfaEnabled) {
        // Nothing is issued yet: the challenge remembers the hash proven, so a password change meanwhile kills it.
        const mfaToken = randomToken();
        await insertMfaChallenge(tx, {
          userId: account.id,
          tokenHash: sha256(mfaToken),
          passwordHash: rehash ?? current.passwordHash,
          at,
          expiresAt: new Date(at.getTime() + MFA_CHALLENGE_TTL_SECONDS * 1000),
        });
        return { kind: 'mfa' as const, mfaToken, expiresIn: MFA_CHALLENGE_TTL_SECONDS };
      }
      const tokens = await sessions.start(tx, current, context);
      await recordSecurityEvent(tx, log, {
        type: 'login_succeeded',
        userId: account.id,
        context,
        at,
        details: { sessionId: tokens.sessionId },
      });
      return { kind: 'session' as const, user: toUser(current), tokens };
    });
    // Deleted, or its password changed, while this login was verifying the old one.
    if (!issued) throw new InvalidCredentials();
    return issued;
  }

  /** The per-IP login limit (of `windowMs`) was hit: the targeted account, if it exists, learns of it. */
  async recordLoginRateLimited(email: string, context: RequestContext, windowMs: number): Promise<void> {
    const account = await findCredentialsByEmail(this.deps.db, normalizeEmail(email));
    await this.#recordRateLimited(account?.id ?? null, context, 'login_per_ip', windowMs);
  }

  /**
   * Proves the caller knows its current password, for a route that changes something only the owner may change.
   * A wrong one is a failed login of the account (its budgets, a `login_failed` event) and spends a budget of the
   * user's own: 401 INVALID_CREDENTIALS, or 429 while a budget holds. Returns the email and the hash it matched.
   * `secondProofFollows`: the caller checks a TOTP code next and settles the budgets itself.
   */
  async confirmPassword(
    principal: Principal,
    currentPassword: string,
    context: RequestContext,
    options: { secondProofFollows?: boolean } = {},
  ): Promise<{ email: string; passwordHash: string }> {
    const { db, passwords, throttle, clock, log } = this.deps;
    const stored = await findPasswordById(db, principal.userId);
    if (!stored) throw new InvalidCredentials();
    const reservation = await throttle.reservePasswordChange(principal.userId, stored.email, context.ip);
    if (reservation.limited) {
      await this.#recordRateLimited(principal.userId, context, reservation.limit, LOGIN_FAILURE_WINDOW_MS);
      throw rateLimited(reservation.retryAfter);
    }
    const { slot } = reservation;
    const valid = await giveBackOnError(slot, () => passwords.verify(stored.passwordHash, currentPassword));
    if (!valid) {
      await recordSecurityEvent(db, log, {
        type: 'login_failed',
        userId: principal.userId,
        context,
        at: new Date(clock.now()),
        details: { email: stored.email, reason: 'wrong_current_password', sessionId: principal.sessionId },
      });
      throw new InvalidCredentials();
    }
    // With a code still to check, a right password must not clear the budgets the code's failures count against.
    await (options.secondProofFollows ? slot.release() : slot.succeeded());
    return stored;
  }

  /**
   * Checks the current password, sets the new one, ends every other session (the current one stays) and voids every
   * password-reset link.
   */
  async changePassword(
    principal: Principal,
    input: { currentPassword: string; newPassword: string },
    context: RequestContext,
  ): Promise<void> {
    const { passwords, sessions, revocations, clock, log } = this.deps;
    const { passwordHash: storedHash } = await this.confirmPassword(principal, input.currentPassword, context);
    passwords.assertAcceptable(input.newPassword);
    const newHash = await passwords.hash(input.newPassword);
    await revocations.transaction(async (tx, revoke) => {
      // A concurrent change that committed since the check above wins; this one must prove the password again.
      if ((await lockPasswordHash(tx, principal.userId)) !== storedHash) throw new InvalidCredentials();
      const at = new Date(clock.now());
      await updatePasswordHash(tx, principal.userId, newHash, at);
      await deleteLiveActionTokens(tx, principal.userId, ['password_reset']);
      const ended = await sessions.endOthers(tx, revoke, principal.userId, principal.sessionId, at);
      await recordSecurityEvent(tx, log, {
        type: 'password_changed',
        userId: principal.userId,
        context,
        at,
        details: { sessionsRevoked: ended },
      });
    });
  }

  /** Recorded in the account's events once per window and limit, however many requests it refuses. */
  async #recordRateLimited(
    userId: string | null,
    context: RequestContext,
    limit: string,
    windowMs: number,
  ): Promise<void> {
    const { db, throttle, clock, log } = this.deps;
    if (userId) {
      if (!(await throttle.firstRefusal(userId, limit, windowMs))) return;
      await recordSecurityEvent(db, log, {
        type: 'rate_limited',
        userId,
        context,
        at: new Date(clock.now()),
        details: { limit },
      });
    } else {
      log.info({ securityEvent: 'rate_limited', ip: context.ip, limit }, 'rate limited (no such account)');
    }
  }
}
