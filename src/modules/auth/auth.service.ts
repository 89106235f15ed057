// Registration and login: the business rules, in transactions, with their security events.
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../clock.js';
import type { Database } from '../../db/client.js';
import { InvalidCredentials } from '../../errors.js';
import type { RequestContext } from '../../lib/request-context.js';
import { recordSecurityEvent } from '../security-events/security-events.service.js';
import { findCredentialsByEmail, insertUser, toUser, updatePasswordHash } from '../users/users.repository.js';
import type { User } from '../users/users.schemas.js';
import type { Passwords } from './passwords.js';
import type { IssuedTokens, TokenService } from './tokens.service.js';

export interface AuthServiceDeps {
  db: Database;
  passwords: Passwords;
  tokens: TokenService;
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
    const { db, passwords, tokens, clock, log } = this.deps;
    const email = normalizeEmail(input.email);
    const account = await findCredentialsByEmail(db, email);
    const valid = account
      ? await passwords.verify(account.passwordHash, input.password)
      : await passwords.verifyDummy(input.password);
    if (!account || !valid) {
      await recordSecurityEvent(db, log, {
        type: 'login_failed',
        userId: account?.id ?? null,
        context,
        at: new Date(clock.now()),
        details: { email, reason: account ? 'wrong_password' : 'unknown_email' },
      });
      throw new InvalidCredentials();
    }
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
}
