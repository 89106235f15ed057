// Accounts by mail: verification, password reset and email change. Each link carries a single-use, purpose-bound
// action token stored only as its SHA-256. The request routes answer 202 the same way for every address: on the
// request path they only spend budgets; looking the address up, minting the token and mailing it happen after the
// response (`deferred`), so neither the answer nor its time tells whether an account exists.
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { Database, Executor } from '../../db/client.js';
import type { ActionTokenPurpose } from '../../db/schema.js';
import { ActionTokenInvalid, rateLimited } from '../../errors.js';
import { randomToken, sha256 } from '../../lib/ids.js';
import type { RequestContext } from '../../lib/request-context.js';
import type { MailQueue } from '../../mail/mail-queue.js';
import type { OutgoingMail } from '../../mail/transport.js';
import type { Principal } from '../../plugins/authenticate.js';
import type { Passwords } from '../../plugins/passwords.js';
import type { Store } from '../../store/store.js';
import { type AuthService, normalizeEmail } from '../auth/auth.service.js';
import { firstRefusal } from '../auth/login-throttle.js';
import type { RevocationService } from '../revocations/revocations.service.js';
import { recordSecurityEvent } from '../security-events/security-events.service.js';
import type { SessionService } from '../sessions/sessions.service.js';
import {
  bumpTokenVersion,
  findCredentialsByEmail,
  lockUser,
  markEmailVerified,
  type TokenUserRow,
  toUser,
  updateEmail,
  updatePasswordHash,
} from '../users/users.repository.js';
import type { User } from '../users/users.schemas.js';
import {
  type ActionTokenRow,
  deleteActionToken,
  deleteLiveActionTokens,
  findActionToken,
  insertActionToken,
  lockActionToken,
  markActionTokenUsed,
} from './action-tokens.repository.js';
import {
  emailChangeMail,
  emailChangeNotice,
  type LinkPage,
  linkTo,
  passwordResetMail,
  verificationMail,
} from './mail-templates.js';

export const MAIL_BUDGET_WINDOW_MS = 60 * 60 * 1000;

export interface AccountServiceDeps {
  db: Database;
  auth: AuthService;
  sessions: SessionService;
  revocations: RevocationService;
  passwords: Passwords;
  mail: MailQueue;
  store: Store;
  config: Pick<Config, 'mail' | 'rateLimit'>;
  clock: Clock;
  log: FastifyBaseLogger;
}

interface PurposeRule {
  page: LinkPage;
  ttlSeconds: (config: Config['mail']) => number;
  compose: (to: string, link: string, ttlSeconds: number) => OutgoingMail;
  /** A new link voids the older unused ones of its purpose: only the latest request counts. */
  voidsOlder: boolean;
}

const purposes: Record<ActionTokenPurpose, PurposeRule> = {
  verify_email: {
    page: 'verify-email',
    ttlSeconds: (mail) => mail.ttl.verifyEmail,
    compose: verificationMail,
    voidsOlder: false,
  },
  password_reset: {
    page: 'reset-password',
    ttlSeconds: (mail) => mail.ttl.passwordReset,
    compose: passwordResetMail,
    voidsOlder: true,
  },
  email_change: {
    page: 'confirm-email',
    ttlSeconds: (mail) => mail.ttl.emailChange,
    compose: emailChangeMail,
    voidsOlder: true,
  },
};

/** Work that runs after the response; its failures are logged, never answered. */
export type DeferredWork = () => Promise<void>;

export class AccountService {
  readonly #background = new Set<Promise<void>>();

  constructor(private readonly deps: AccountServiceDeps) {}

  // ---- Request routes: budgets on the request path, the rest deferred --------------------------------------------

  /**
   * `POST /auth/verify-email/request` and `/auth/password-reset/request`: spends the address's budget (429 when it is
   * spent, the same for every address) and returns the work to run after the response.
   */
  async acceptMailRequest(
    purpose: 'verify_email' | 'password_reset',
    rawEmail: string,
    context: RequestContext,
  ): Promise<DeferredWork> {
    const email = normalizeEmail(rawEmail);
    await this.#spendMailBudget(purpose, email, context);
    return purpose === 'verify_email'
      ? () => this.#sendVerification(email, context)
      : () => this.#sendPasswordReset(email, context);
  }

  /**
   * `POST /auth/email`: proves the current password, spends the new address's budget, and returns the work to run
   * after the response. Whether the new address is taken is learnt only there, so the answer cannot tell.
   */
  async acceptEmailChange(
    principal: Principal,
    input: { newEmail: string; currentPassword: string },
    context: RequestContext,
  ): Promise<DeferredWork> {
    const { email: currentEmail } = await this.deps.auth.confirmPassword(principal, input.currentPassword, context);
    const newEmail = normalizeEmail(input.newEmail);
    await this.#spendMailBudget('email_change', newEmail, context);
    return () => this.#sendEmailChange(principal.userId, currentEmail, newEmail, context);
  }

  /** A new user: a verification link, unless verification is off or the address's budget is spent. */
  afterRegistration(user: User, context: RequestContext): void {
    if (this.deps.config.mail.verification === 'off') return;
    this.runInBackground('verification mail', async () => {
      const budgetSpent = await this.#takeMailBudget('verify_email', user.email);
      if (budgetSpent) {
        this.deps.log.info({ userId: user.id }, 'verification mail skipped: the address has spent its budget');
        return;
      }
      await this.#mailLink('verify_email', user.id, user.email, user.email);
      await this.#record('verification_sent', user.id, context, { email: user.email });
    });
  }

  // ---- Confirmations ---------------------------------------------------------------------------------------------

  /** `POST /auth/verify-email`. */
  async verifyEmail(token: string, context: RequestContext): Promise<User> {
    const { db, clock, log } = this.deps;
    const found = await this.#find(token, 'verify_email');
    return db.transaction(async (tx) => {
      const { user, row } = await this.#lockUsable(tx, found, token);
      if (row.email !== user.email) throw new ActionTokenInvalid();
      const at = new Date(clock.now());
      await markActionTokenUsed(tx, row.id, at);
      await markEmailVerified(tx, user.id, at);
      await recordSecurityEvent(tx, log, { type: 'email_verified', userId: user.id, context, at });
      return toUser({ ...user, emailVerifiedAt: user.emailVerifiedAt ?? at });
    });
  }

  /**
   * `POST /auth/password-reset`: a full recovery. The new password replaces the old, every session and refresh token
   * of the user ends, every access token issued before is rejected at once (the user's token version, as logout-all
   * does), every reset link is void, and the address counts as verified.
   */
  async resetPassword(token: string, newPassword: string, context: RequestContext): Promise<void> {
    const { passwords, sessions, revocations, clock, log } = this.deps;
    // The token before the password: an invalid link costs no hash.
    const found = await this.#find(token, 'password_reset');
    passwords.assertAcceptable(newPassword);
    const newHash = await passwords.hash(newPassword);
    await revocations.transaction(async (tx, revoke) => {
      const { user, row } = await this.#lockUsable(tx, found, token);
      // The link went to an address the account no longer has.
      if (row.email !== user.email) throw new ActionTokenInvalid();
      const at = new Date(clock.now());
      await markActionTokenUsed(tx, row.id, at);
      await deleteLiveActionTokens(tx, user.id, ['password_reset']);
      await updatePasswordHash(tx, user.id, newHash, at);
      await markEmailVerified(tx, user.id, at);
      const minVersion = await bumpTokenVersion(tx, user.id);
      const ended = await sessions.endOthers(tx, revoke, user.id, undefined, at);
      await recordSecurityEvent(tx, log, {
        type: 'password_reset',
        userId: user.id,
        context,
        at,
        details: { sessionsRevoked: ended },
      });
      await revoke.user(user.id, minVersion);
    });
  }

  /** `POST /auth/email/confirm`: the new address, verified. 409 EMAIL_TAKEN when someone registered it meanwhile. */
  async confirmEmailChange(token: string, context: RequestContext): Promise<User> {
    const { db, clock, log } = this.deps;
    const found = await this.#find(token, 'email_change');
    return db.transaction(async (tx) => {
      const { user, row } = await this.#lockUsable(tx, found, token);
      const at = new Date(clock.now());
      // The unique index decides a race with a registration of the same address; the loser rolls back whole.
      const updated = await updateEmail(tx, user.id, row.email, at);
      await markActionTokenUsed(tx, row.id, at);
      // Links mailed to the old address, or to other new ones, must not outlive the change.
      await deleteLiveActionTokens(tx, user.id, undefined, row.id);
      await recordSecurityEvent(tx, log, {
        type: 'email_changed',
        userId: user.id,
        context,
        at,
        details: { from: user.email, to: row.email },
      });
      return toUser(updated);
    });
  }

  // ---- Background work -------------------------------------------------------------------------------------------

  /** Runs `work` off the request path; `settled()` waits for it. */
  runInBackground(label: string, work: DeferredWork): void {
    const running: Promise<void> = work()
      .catch((error: unknown) => this.deps.log.error({ err: error, work: label }, 'account mail work failed'))
      .finally(() => this.#background.delete(running));
    this.#background.add(running);
  }

  /** Resolves when all deferred work is done and the mail it queued is delivered or given up. */
  async settled(): Promise<void> {
    await this.drained();
    await this.deps.mail.idle();
  }

  /**
   * Resolves when all deferred work is done (its mail queued, not necessarily delivered): what shutdown waits for
   * before the mail queue closes. Waiting for delivery there would wait out every pending retry.
   */
  async drained(): Promise<void> {
    while (this.#background.size > 0) await Promise.all([...this.#background]);
  }

  // ---- Internals -------------------------------------------------------------------------------------------------

  async #sendVerification(email: string, context: RequestContext): Promise<void> {
    const account = await findCredentialsByEmail(this.deps.db, email);
    const sends = this.deps.config.mail.verification !== 'off' && account?.emailVerifiedAt === null;
    if (account && sends) await this.#mailLink('verify_email', account.id, account.email, account.email);
    // One event whatever the address; it names the account only when a mail went to it.
    await this.#record('verification_sent', sends ? (account?.id ?? null) : null, context, { email });
  }

  async #sendPasswordReset(email: string, context: RequestContext): Promise<void> {
    const account = await findCredentialsByEmail(this.deps.db, email);
    if (account) await this.#mailLink('password_reset', account.id, account.email, account.email);
    await this.#record('password_reset_requested', account?.id ?? null, context, { email });
  }

  async #sendEmailChange(userId: string, currentEmail: string, newEmail: string, context: RequestContext) {
    const { db, mail } = this.deps;
    // Taken (by anyone, the caller included): that address is sent nothing, and the caller is told nothing.
    const taken = await findCredentialsByEmail(db, newEmail);
    const linked = taken ? false : await this.#mailLink('email_change', userId, currentEmail, newEmail);
    mail.send(emailChangeNotice(currentEmail, newEmail));
    await this.#record('email_change_requested', userId, context, { to: newEmail, linkSent: linked });
  }

  /**
   * Mints a token for the user (still at `expectedEmail`), voiding older ones where the purpose says so, and queues
   * its link to `to`. An undelivered mail voids its token. Returns whether a link was queued.
   */
  async #mailLink(purpose: ActionTokenPurpose, userId: string, expectedEmail: string, to: string): Promise<boolean> {
    const { db, mail, config, clock } = this.deps;
    const rule = purposes[purpose];
    const ttlSeconds = rule.ttlSeconds(config.mail);
    const token = randomToken();
    const tokenId = await db.transaction(async (tx) => {
      // Locked, so a concurrent reset, change or deletion is wholly before or after this.
      const user = await lockUser(tx, userId);
      if (!user || user.email !== expectedEmail) return undefined;
      if (rule.voidsOlder) await deleteLiveActionTokens(tx, userId, [purpose]);
      const now = clock.now();
      return insertActionToken(tx, {
        purpose,
        userId,
        email: to,
        tokenHash: sha256(token),
        at: new Date(now),
        expiresAt: new Date(now + ttlSeconds * 1000),
      });
    });
    if (!tokenId) return false;
    const link = linkTo(config.mail.appUrl, rule.page, token);
    mail.send(rule.compose(to, link, ttlSeconds), { onUndelivered: () => deleteActionToken(db, tokenId) });
    return true;
  }

  /** The token's row, if it is one of `purpose`; anything else is ACTION_TOKEN_INVALID before any lock. */
  async #find(token: string, purpose: ActionTokenPurpose): Promise<ActionTokenRow> {
    const found = await findActionToken(this.deps.db, sha256(token));
    if (!found || found.purpose !== purpose || !this.#usable(found)) throw new ActionTokenInvalid();
    return found;
  }

  /**
   * Locks the token's user, then the token (the order every user writer keeps), and checks again what the unlocked
   * read saw: a concurrent presentation of the same token finds it used.
   */
  async #lockUsable(
    tx: Executor,
    found: ActionTokenRow,
    token: string,
  ): Promise<{ user: TokenUserRow; row: ActionTokenRow }> {
    const user = await lockUser(tx, found.userId);
    const row = user ? await lockActionToken(tx, sha256(token)) : undefined;
    if (!user || !row || row.purpose !== found.purpose || !this.#usable(row)) throw new ActionTokenInvalid();
    return { user, row };
  }

  #usable(row: ActionTokenRow): boolean {
    return row.usedAt === null && row.expiresAt.getTime() > this.deps.clock.now();
  }

  /** Counts one mail to `email` for `purpose`; 429 (and nothing counted) when its budget is spent. */
  async #spendMailBudget(purpose: ActionTokenPurpose, email: string, context: RequestContext): Promise<void> {
    const refused = await this.#takeMailBudget(purpose, email);
    if (!refused) return;
    this.runInBackground('rate_limited event', () => this.#recordMailLimited(purpose, email, context));
    throw rateLimited(Math.max(1, Math.ceil(refused.resetInMs / 1000)));
  }

  /**
   * Counts one mail to `email` for `purpose`, or, when its budget is spent, counts nothing and returns when the
   * window resets. Registration's verification mail uses it directly: spent, it is skipped without a 429.
   */
  async #takeMailBudget(purpose: ActionTokenPurpose, email: string): Promise<{ resetInMs: number } | undefined> {
    const { store, config } = this.deps;
    if (!config.rateLimit.enabled) return undefined;
    const key = mailBudgetKey(purpose, email);
    const { count, resetInMs } = await store.hit(key, MAIL_BUDGET_WINDOW_MS);
    if (count <= config.rateLimit.mailPerEmail) return undefined;
    await store.release(key);
    return { resetInMs };
  }

  /** `rate_limited` in the targeted account's events, once per window (looked up after the response). */
  async #recordMailLimited(purpose: ActionTokenPurpose, email: string, context: RequestContext): Promise<void> {
    const { db, store, log } = this.deps;
    const account = await findCredentialsByEmail(db, email);
    const limit = `mail_per_email:${purpose}`;
    if (!account) {
      log.info({ securityEvent: 'rate_limited', ip: context.ip, limit }, 'rate limited (no such account)');
      return;
    }
    if (await firstRefusal(store, account.id, limit, MAIL_BUDGET_WINDOW_MS)) {
      await this.#record('rate_limited', account.id, context, { limit });
    }
  }

  async #record(
    type: 'verification_sent' | 'password_reset_requested' | 'email_change_requested' | 'rate_limited',
    userId: string | null,
    context: RequestContext,
    details: Record<string, unknown>,
  ): Promise<void> {
    const { db, clock, log } = this.deps;
    await recordSecurityEvent(db, log, { type, userId, context, at: new Date(clock.now()), details });
  }
}

export const mailBudgetKey = (purpose: ActionTokenPurpose, email: string) => `mail:${purpose}:${email}`;
