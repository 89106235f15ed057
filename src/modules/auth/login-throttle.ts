// Failed-password budgets per account: per (email, IP), so an attacker elsewhere cannot lock the user out from the
// user's own address, and per email from all IPs; the password change also per user. Counted whether or not the
// email is registered. A slot is reserved (counted) before the slow password check and given back when the
// attempt turns out not to be a failure, so parallel guesses can never overrun a budget.
import { rateLimitKey } from '../../lib/client-address.js';
import type { Store } from '../../store/store.js';

export const LOGIN_FAILURE_WINDOW_MS = 15 * 60 * 1000;

export interface LoginThrottleLimits {
  enabled: boolean;
  /** Failures per email and IP in the window. */
  loginFailures: number;
  /** Failures per email from all IPs in the window. */
  accountFailures: number;
  /** Wrong current passwords per user in the window (POST /auth/password). */
  passwordFailures: number;
}

/** The name of a budget, as recorded in `rate_limited` events. */
export type FailureLimit = 'login_failures' | 'password_failures';

/** A failure slot held in every budget of one attempt, reserved before its password is checked. */
export interface FailureSlot {
  /** The password was right: the slot is given back, and the budgets that clear on success are cleared. */
  succeeded(): Promise<void>;
  /** The attempt reached no verdict (an error): the slot is given back. A wrong password keeps it. */
  release(): Promise<void>;
}

export type Reservation =
  | { limited: false; slot: FailureSlot }
  | { limited: true; limit: FailureLimit /** Seconds. */; retryAfter: number };

interface Budget {
  key: string;
  max: number;
  limit: FailureLimit;
  /** A correct password clears it (the per-address and per-user counts), or only gives its slot back. */
  clearedOnSuccess: boolean;
}

const NO_SLOT: FailureSlot = { succeeded: async () => {}, release: async () => {} };

/** Whether this is the first refusal of `subject` by `limit` in `windowMs`: a `rate_limited` event is written once. */
export async function firstRefusal(store: Store, subject: string, limit: string, windowMs: number): Promise<boolean> {
  return (await store.hit(`rl-event:${subject}:${limit}`, windowMs)).count === 1;
}

export class LoginThrottle {
  /** `onLimited` learns each refusal's budget (metrics). */
  constructor(
    private readonly store: Store,
    private readonly limits: LoginThrottleLimits,
    private readonly onLimited?: (limit: FailureLimit) => void,
  ) {}

  /** A login attempt for `email` from `ip`. */
  reserveLogin(email: string, ip: string): Promise<Reservation> {
    return this.#reserve(this.#accountBudgets(email, ip));
  }

  /** A password change of `userId` (whose email is `email`), from `ip`: its own budget and the account's. */
  reservePasswordChange(userId: string, email: string, ip: string): Promise<Reservation> {
    return this.#reserve([
      {
        key: `password-fail:${userId}`,
        max: this.limits.passwordFailures,
        limit: 'password_failures',
        clearedOnSuccess: true,
      },
      ...this.#accountBudgets(email, ip),
    ]);
  }

  /** Whether this is the first refusal of `subject` by `limit` in `windowMs`: its event is recorded once. */
  firstRefusal(subject: string, limit: string, windowMs: number): Promise<boolean> {
    return firstRefusal(this.store, subject, limit, windowMs);
  }

  #accountBudgets(email: string, ip: string): Budget[] {
    return [
      {
        key: `login-fail:${email}|${rateLimitKey(ip)}`,
        max: this.limits.loginFailures,
        limit: 'login_failures',
        clearedOnSuccess: true,
      },
      {
        key: `login-fail:${email}`,
        max: this.limits.accountFailures,
        limit: 'login_failures',
        clearedOnSuccess: false,
      },
    ];
  }

  async #reserve(budgets: Budget[]): Promise<Reservation> {
    if (!this.limits.enabled) return { limited: false, slot: NO_SLOT };
    const { store } = this;
    // Counted first, compared after: the count each request gets back is its own, however many run at once.
    const counts = await Promise.all(budgets.map((budget) => store.hit(budget.key, LOGIN_FAILURE_WINDOW_MS)));
    const release = async () => {
      await Promise.all(budgets.map((budget) => store.release(budget.key)));
    };
    const over = budgets.flatMap((budget, index) => {
      const counter = counts[index];
      return counter && counter.count > budget.max ? [{ budget, resetInMs: counter.resetInMs }] : [];
    });
    const [first] = over;
    if (first) {
      // Requests answered 429 do not count.
      await release();
      const waitMs = Math.max(...over.map((entry) => entry.resetInMs));
      this.onLimited?.(first.budget.limit);
      return { limited: true, limit: first.budget.limit, retryAfter: Math.max(1, Math.ceil(waitMs / 1000)) };
    }
    return {
      limited: false,
      slot: {
        succeeded: async () => {
          await Promise.all(
            budgets.map((budget) => (budget.clearedOnSuccess ? store.reset(budget.key) : store.release(budget.key))),
          );
        },
        release,
      },
    };
  }
}

/** Runs the check (a password, a code) in `slot`; an error reaches no verdict, so the slot is given back. */
export async function giveBackOnError<T>(slot: FailureSlot, check: () => Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (error) {
    await slot.release().catch(() => undefined);
    throw error;
  }
}
