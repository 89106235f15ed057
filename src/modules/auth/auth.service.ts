// Registration and login: the business rules, in transactions, with their security events.
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../clock.js';
import type { Database } from '../../db/client.js';
import { InvalidCredentials, rateLimited } from '../../errors.js';
import type { RequestContext } from '../../lib/request-context.js';
import { recordSecurityEvent } from '../security-events/security-events.service.js';
import { findCredentialsByEmail, insertUser, toUser, updatePasswordHash } from '../users/users.repository.js';
import type { User } from '../users/users.schemas.js';
import type { LoginThrottle } from './login-throttle.js';
import type { Passwords } from './passwords.js';
import type { IssuedTokens, TokenService } from './tokens.service.js';

export interface AuthServiceDeps {
  db: Database;
  passwords: Passwords;
  tokens: TokenService;
  throttle: LoginThrottle;
  clock: Clock;
  log: FastifyBaseLogger;
}

export const normalizeEmail = (email: string) => email.trim().toLowerCase();

export class AuthService {
  constructor(private readonly deps: AuthServiceDeps) {}

  async register(
    input: { email: string; password: string; name?: string | null },
    context: RequestContext,
  ): Promise<User> {
    const { db, passwords, clock, log } = this.deps;
    passwords.assertAcceptable(input.password);
    const passwordHash = await passwords.hash(input.password);
    const name = input.name?.trim() || null;
    return db.transaction(async (tx) => {
      const at = new Date(clock.now());
      const row = await insertUser(tx, { email: normalizeEmail(input.email), passwordHash, name, at });
      await recordSecurityEvent(tx, log, { type: 'registered', userId: row.id, context, at });
      return toUser(row);
    });
  }

  /** One answer, INVALID_CREDENTIALS, for an unknown email and a wrong password, in the same time. */
  async login(
    input: { email: string; password: string },
    context: RequestContext,
  ): Promise<{ user: User; tokens: IssuedTokens }> {
    const { db, passwords, tokens, throttle, clock, log } = this.deps;
    const email = normalizeEmail(input.email);
    const account = await findCredentialsByEmail(db, email);
    // Checked before the password, so while a limit holds even the right password gets 429.
    const retryAfter = await throttle.retryAfter(email, context.ip);
    if (retryAfter > 0) {
      await this.#recordRateLimited(account?.id ?? null, context, 'login_failures');
      throw rateLimited(retryAfter);
    }
    const valid = account
      ? await passwords.verify(account.passwordHash, input.password)
      : await passwords.verifyDummy(input.password);
    if (!account || !valid) {
      await throttle.recordFailure(email, context.ip);
      await recordSecurityEvent(db, log, {
        type: 'login_failed',
        userId: account?.id ?? null,
        context,
        at: new Date(clock.now()),
        details: { email, reason: account ? 'wrong_password' : 'unknown_email' },
      });
      throw new InvalidCredentials();
    }
    await throttle.recordSuccess(email, context.ip);
    // Upgrade hashes made with weaker parameters while the plain password is at hand.
    const rehash = passwords.needsRehash(account.passwordHash) ? await passwords.hash(input.password) : undefined;
    const issued = await db.transaction(async (tx) => {
      const at = new Date(clock.now());
      if (rehash) await updatePasswordHash(tx, account.id, rehash, null);
      const pair = await tokens.startSession(tx, account, context);
      await recordSecurityEvent(tx, log, {
        type: 'login_succeeded',
        userId: account.id,
        context,
        at,
        details: { sessionId: pair.sessionId },
      });
      return pair;
    });
    return { user: toUser(account), tokens: issued };
  }

  /** The per-IP login limit was hit: the targeted account, if it exists, learns of it. */
  async recordLoginRateLimited(email: string, context: RequestContext): Promise<void> {
    const account = await findCredentialsByEmail(this.deps.db, normalizeEmail(email));
    await this.#recordRateLimited(account?.id ?? null, context, 'login_per_ip');
  }

  async #recordRateLimited(userId: string | null, context: RequestContext, limit: string): Promise<void> {
    const { db, clock, log } = this.deps;
    if (userId) {
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
