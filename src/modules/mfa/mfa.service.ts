// TOTP (RFC 6238) as a second factor, with single-use recovery codes, and the second step of a login. Secrets are
// sealed at rest; a code is accepted once (the last used step is kept under the factor's row lock); the second
// step's token is opaque, stored as SHA-256, and dies after its first success or its fifth wrong code.
import { createHmac, randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { Database, Executor } from '../../db/client.js';
import type { SecurityEventType } from '../../db/schema.js';
import { MfaCodeInvalid, MfaTokenInvalid, NotFound, rateLimited, ValidationFailed } from '../../errors.js';
import { sha256 } from '../../lib/ids.js';
import type { RequestContext } from '../../lib/request-context.js';
import { open, seal } from '../../lib/sealed.js';
import type { Principal } from '../../plugins/authenticate.js';
import type { AuthService } from '../auth/auth.service.js';
import { giveBackOnError, type LoginThrottle } from '../auth/login-throttle.js';
import type { RevocationService } from '../revocations/revocations.service.js';
import { recordSecurityEvent } from '../security-events/security-events.service.js';
import { AMR, type IssuedTokens, type SessionService } from '../sessions/sessions.service.js';
import { findPasswordById, lockCredentials, lockUser, toUser } from '../users/users.repository.js';
import type { User } from '../users/users.schemas.js';
import {
  countMfaFailure,
  deleteSecondFactor,
  findMfaChallenge,
  findTotpFactor,
  lockMfaChallenge,
  lockTotpFactor,
  markMfaChallengeUsed,
  markTotpStepUsed,
  putPendingTotpFactor,
  replaceRecoveryCodes,
  type TotpFactorRow,
  useRecoveryCode,
} from './mfa.repository.js';
import { generateTotpSecret, matchTotpStep, otpauthUrl } from './totp.js';

export const RECOVERY_CODE_COUNT = 10;
/** Wrong codes a second step survives: the fifth kills it. */
export const MFA_MAX_FAILURES = 5;

export interface MfaServiceDeps {
  db: Database;
  auth: AuthService;
  sessions: SessionService;
  revocations: RevocationService;
  throttle: LoginThrottle;
  /** AES-256-GCM key of the TOTP secrets. */
  encryptionKey: Buffer;
  /** HMAC key of the recovery codes. */
  recoveryCodeKey: Buffer;
  config: Pick<Config, 'issuer'>;
  clock: Clock;
  log: FastifyBaseLogger;
}

export type SecondFactor = { code: string } | { recoveryCode: string };

type VerifyOutcome =
  | { kind: 'issued'; user: User; tokens: IssuedTokens }
  | { kind: 'wrong-code' }
  | { kind: 'dead-challenge' };

export class MfaService {
  constructor(private readonly deps: MfaServiceDeps) {}

  /** A new secret, not active until `enable` sees a code of it. */
  async setupTotp(
    principal: Principal,
    currentPassword: string,
    context: RequestContext,
  ): Promise<{ secret: string; otpauthUrl: string }> {
    const { db, auth, encryptionKey, config, clock } = this.deps;
    const { email } = await auth.confirmPassword(principal, currentPassword, context);
    const existing = await findTotpFactor(db, principal.userId);
    if (existing?.enabledAt) throw new ValidationFailed('TOTP is already enabled: disable it first');
    const secret = generateTotpSecret();
    await putPendingTotpFactor(
      db,
      principal.userId,
      seal(encryptionKey, secret, principal.userId),
      new Date(clock.now()),
    );
    return { secret, otpauthUrl: otpauthUrl(secret, email, new URL(config.issuer).host) };
  }

  /** Confirms the pending secret with a code of it (that code counts as used) and returns ten recovery codes. */
  async enableTotp(principal: Principal, code: string, context: RequestContext): Promise<string[]> {
    const { db, clock, log } = this.deps;
    return db.transaction(async (tx) => {
      await lockUser(tx, principal.userId);
      const factor = await lockTotpFactor(tx, principal.userId);
      if (!factor || factor.enabledAt) throw new ValidationFailed('No TOTP setup is pending: call setup first');
      const step = this.#acceptableStep(factor, code);
      if (step === null) throw new MfaCodeInvalid();
      const at = new Date(clock.now());
      await markTotpStepUsed(tx, principal.userId, step, at);
      const codes = await this.#newRecoveryCodes(tx, principal.userId, at);
      await recordSecurityEvent(tx, log, { type: 'mfa_enabled', userId: principal.userId, context, at });
      return codes;
    });
  }

  async disableTotp(principal: Principal, input: { currentPassword: string; code: string }, context: RequestContext) {
    await this.#withProvenFactor(principal, input, context, async (tx, at) => {
      await deleteSecondFactor(tx, principal.userId);
      await recordSecurityEvent(tx, this.deps.log, { type: 'mfa_disabled', userId: principal.userId, context, at });
    });
  }

  async regenerateRecoveryCodes(
    principal: Principal,
    input: { currentPassword: string; code: string },
    context: RequestContext,
  ): Promise<string[]> {
    return this.#withProvenFactor(principal, input, context, (tx, at) =>
      this.#newRecoveryCodes(tx, principal.userId, at),
    );
  }

  /**
   * The second step of a login. A wrong code counts as a failed login of the account (its budgets) and against the
   * challenge; the fifth kills it. The right one opens the session, with `amr` pwd+otp+mfa.
   */
  async verifyLogin(
    input: { mfaToken: string } & SecondFactor,
    context: RequestContext,
  ): Promise<{ user: User; tokens: IssuedTokens }> {
    const { db, sessions, throttle, clock, log } = this.deps;
    const challenge = await findMfaChallenge(db, sha256(input.mfaToken));
    if (!challenge || !this.#live(challenge)) throw new MfaTokenInvalid();
    const account = await findPasswordById(db, challenge.userId);
    if (!account) throw new MfaTokenInvalid();
    const reservation = await throttle.reserveLogin(account.email, context.ip);
    if (reservation.limited) throw rateLimited(reservation.retryAfter);
    const { slot } = reservation;
    const outcome = await giveBackOnError(slot, () =>
      db.transaction(async (tx): Promise<VerifyOutcome> => {
        const user = await lockCredentials(tx, challenge.userId, 'share');
        const locked = await lockMfaChallenge(tx, challenge.id);
        // A password change or reset since the password step ends it, like a deletion does.
        if (!user || !locked || !this.#live(locked) || user.passwordHash !== locked.passwordHash) {
          return { kind: 'dead-challenge' };
        }
        const at = new Date(clock.now());
        const factor = await lockTotpFactor(tx, user.id);
        if (!factor?.enabledAt) return { kind: 'dead-challenge' };
        let method: 'totp' | 'recovery_code' | undefined;
        if ('code' in input) {
          const step = this.#acceptableStep(factor, input.code);
          if (step !== null) {
            await markTotpStepUsed(tx, user.id, step);
            method = 'totp';
          }
        } else if (await useRecoveryCode(tx, user.id, this.#hashRecoveryCode(input.recoveryCode), at)) {
          method = 'recovery_code';
        }
        if (!method) {
          const failures = await countMfaFailure(tx, locked.id);
          await recordSecurityEvent(tx, log, {
            type: 'mfa_failed',
            userId: user.id,
            context,
            at,
            details: { method: 'code' in input ? 'totp' : 'recovery_code', failures },
          });
          return { kind: 'wrong-code' };
        }
        await markMfaChallengeUsed(tx, locked.id, at);
        const tokens = await sessions.start(tx, user, context, AMR.passwordAndOtp);
        if (method === 'recovery_code') {
          await recordSecurityEvent(tx, log, { type: 'recovery_code_used', userId: user.id, context, at });
        }
        await recordSecurityEvent(tx, log, {
          type: 'login_succeeded',
          userId: user.id,
          context,
          at,
          details: { sessionId: tokens.sessionId, secondFactor: method },
        });
        return { kind: 'issued', user: toUser(user), tokens };
      }),
    );
    if (outcome.kind === 'issued') {
      await slot.succeeded();
      return outcome;
    }
    if (outcome.kind === 'dead-challenge') {
      await slot.release().catch(() => undefined);
      throw new MfaTokenInvalid();
    }
    // The slot stays spent: a wrong code is a failed login of the account.
    throw new MfaCodeInvalid();
  }

  /** `DELETE /users/:id/mfa`: TOTP and recovery codes removed, every session of the user revoked. */
  async adminReset(actorId: string, userId: string, context: RequestContext): Promise<void> {
    const { revocations, sessions, clock, log } = this.deps;
    await revocations.transaction(async (tx, revoke) => {
      const user = await lockUser(tx, userId);
      if (!user) throw new NotFound('User not found');
      const at = new Date(clock.now());
      await deleteSecondFactor(tx, userId);
      const ended = await sessions.endOthers(tx, revoke, userId, undefined, at);
      await recordSecurityEvent(tx, log, {
        type: 'mfa_reset' satisfies SecurityEventType,
        userId,
        context,
        at,
        details: { by: actorId, sessionsRevoked: ended },
      });
    });
  }

  /**
   * Proves the password and a TOTP code of the enabled factor, then runs `change` under the factor's lock. A wrong
   * code counts like a wrong current password (the user's and the account's budgets), so codes cannot be guessed
   * here faster than at login.
   */
  async #withProvenFactor<T>(
    principal: Principal,
    input: { currentPassword: string; code: string },
    context: RequestContext,
    change: (tx: Executor, at: Date) => Promise<T>,
  ): Promise<T> {
    const { db, auth, throttle, clock, log } = this.deps;
    const { email } = await auth.confirmPassword(principal, input.currentPassword, context, {
      secondProofFollows: true,
    });
    const reservation = await throttle.reservePasswordChange(principal.userId, email, context.ip);
    if (reservation.limited) throw rateLimited(reservation.retryAfter);
    const { slot } = reservation;
    let result: T;
    try {
      result = await db.transaction(async (tx) => {
        await lockUser(tx, principal.userId);
        const factor = await lockTotpFactor(tx, principal.userId);
        if (!factor?.enabledAt) throw new ValidationFailed('TOTP is not enabled');
        const step = this.#acceptableStep(factor, input.code);
        if (step === null) throw new MfaCodeInvalid();
        await markTotpStepUsed(tx, principal.userId, step);
        return change(tx, new Date(clock.now()));
      });
    } catch (error) {
      if (!(error instanceof MfaCodeInvalid)) {
        await slot.release().catch(() => undefined);
        throw error;
      }
      // The slot stays spent.
      await recordSecurityEvent(db, log, {
        type: 'mfa_failed',
        userId: principal.userId,
        context,
        at: new Date(clock.now()),
        details: { method: 'totp', sessionId: principal.sessionId },
      });
      throw error;
    }
    await slot.succeeded();
    return result;
  }

  /** The step of `code` if it is a code of the factor's secret near now and newer than the last one used. */
  #acceptableStep(factor: TotpFactorRow, code: string): number | null {
    const secret = open(this.deps.encryptionKey, factor.secretSealed, factor.userId);
    const step = matchTotpStep(secret, code, this.deps.clock.now());
    if (step === null) return null;
    return factor.lastUsedStep !== null && step <= factor.lastUsedStep ? null : step;
  }

  async #newRecoveryCodes(tx: Executor, userId: string, at: Date): Promise<string[]> {
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, () => newRecoveryCode());
    await replaceRecoveryCodes(
      tx,
      userId,
      codes.map((code) => this.#hashRecoveryCode(code)),
      at,
    );
    return codes;
  }

  #hashRecoveryCode(code: string): string {
    return createHmac('sha256', this.deps.recoveryCodeKey).update(normalizeRecoveryCode(code)).digest('base64url');
  }

  #live(challenge: { usedAt: Date | null; expiresAt: Date; failures: number }): boolean {
    return (
      challenge.usedAt === null &&
      challenge.expiresAt.getTime() > this.deps.clock.now() &&
      challenge.failures < MFA_MAX_FAILURES
    );
  }
}

// Crockford's base32 without look-alikes: 10 characters, 50 bits, typed as `xxxxx-xxxxx`.
const RECOVERY_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

function newRecoveryCode(): string {
  const bytes = randomBytes(10);
  const chars = [...bytes].map((byte) => RECOVERY_ALPHABET[byte & 31]).join('');
  return `${chars.slice(0, 5)}-${chars.slice(5)}`;
}

/** Case, spaces and hyphens do not matter when a code is typed back. */
export function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, '');
}
