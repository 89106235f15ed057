// Failed-login budgets per account: per (email, IP), so an attacker elsewhere cannot lock the user out from the
// user's own address, and per email from all IPs. Counted whether or not the email is registered.
import { rateLimitKey } from '../../lib/client-address.js';
import type { Store } from '../../store/store.js';

export const LOGIN_FAILURE_WINDOW_MS = 15 * 60 * 1000;

export interface LoginThrottleLimits {
  enabled: boolean;
  /** Failures per email and IP in the window. */
  loginFailures: number;
  /** Failures per email from all IPs in the window. */
  accountFailures: number;
}

export class LoginThrottle {
  constructor(
    private readonly store: Store,
    private readonly limits: LoginThrottleLimits,
  ) {}

  #keys(email: string, ip: string) {
    return { fromIp: `login-fail:${email}|${rateLimitKey(ip)}`, anyIp: `login-fail:${email}` };
  }

  /** Seconds until the account may try again from this IP, or 0 when it may try now. */
  async retryAfter(email: string, ip: string): Promise<number> {
    if (!this.limits.enabled) return 0;
    const keys = this.#keys(email, ip);
    const [fromIp, anyIp] = await Promise.all([this.store.peek(keys.fromIp), this.store.peek(keys.anyIp)]);
    const waits = [
      fromIp.count >= this.limits.loginFailures ? fromIp.resetInMs : 0,
      anyIp.count >= this.limits.accountFailures ? anyIp.resetInMs : 0,
    ];
    return Math.ceil(Math.max(...waits) / 1000);
  }

  async recordFailure(email: string, ip: string): Promise<void> {
    if (!this.limits.enabled) return;
    const keys = this.#keys(email, ip);
    await Promise.all([
      this.store.hit(keys.fromIp, LOGIN_FAILURE_WINDOW_MS),
      this.store.hit(keys.anyIp, LOGIN_FAILURE_WINDOW_MS),
    ]);
  }

  /** A correct password from this IP clears its failures; the all-IP count keeps running. */
  async recordSuccess(email: string, ip: string): Promise<void> {
    if (!this.limits.enabled) return;
    await this.store.reset(this.#keys(email, ip).fromIp);
  }
}
