// Decorates `passwords`: the one password hasher and policy (NFKC, 8-128 code points, not a common password,
// argon2id with the configured parameters).
import { dictionary } from '@zxcvbn-ts/language-common';
import argon2 from 'argon2';
import fp from 'fastify-plugin';
import { PasswordTooWeak, serviceBusy } from '../errors.js';
import { BoundedWorkQueue, QueueFull } from '../lib/bounded-work-queue.js';

export interface Argon2Parameters {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

export interface HashingLimits {
  /** Hashes and verifications at once: each holds a libuv thread and ARGON2_MEMORY_KIB for its whole run. */
  concurrency: number;
  /** How many more may wait for a slot; beyond that, 503 SERVICE_UNAVAILABLE with Retry-After. */
  queueLimit: number;
}

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 128;

export class Passwords {
  readonly #parameters: Argon2Parameters & { type: typeof argon2.argon2id };
  readonly #common: ReadonlySet<string>;
  readonly #dummyHash: Promise<string>;
  // argon2 is CPU-bound: with libuv's four threads on fewer cores, a burst of logins would take the CPU from every
  // other request. Bounded to the cores, and the backlog bounded too.
  readonly #queue: BoundedWorkQueue;

  /** `onWaited` learns each hash's or verification's wait for a slot, in seconds (metrics). */
  constructor(
    parameters: Argon2Parameters,
    limits: HashingLimits = { concurrency: 1, queueLimit: 64 },
    onWaited?: (seconds: number) => void,
  ) {
    this.#parameters = { ...parameters, type: argon2.argon2id };
    this.#queue = new BoundedWorkQueue(
      limits.concurrency,
      limits.queueLimit,
      onWaited && ((waitedMs) => onWaited(waitedMs / 1000)),
    );
    // ~49,000 passwords from leaked-password corpora, maintained by zxcvbn-ts; compared case-insensitively.
    this.#common = new Set(dictionary.passwords.map((password: string) => password.toLowerCase()));
    // Made now, so even the first unknown-email login costs exactly one verification.
    this.#dummyHash = argon2.hash('dummy-password-for-timing', this.#parameters);
  }

  /** Resolves once the dummy hash exists (awaited at boot). */
  async ready(): Promise<void> {
    await this.#dummyHash;
  }

  /** Throws PASSWORD_TOO_WEAK unless the password meets the policy. */
  assertAcceptable(password: string): void {
    const normalized = normalize(password);
    const length = [...normalized].length;
    if (length < PASSWORD_MIN_LENGTH) {
      throw new PasswordTooWeak(`Password must be at least ${PASSWORD_MIN_LENGTH} characters`);
    }
    if (length > PASSWORD_MAX_LENGTH) {
      throw new PasswordTooWeak(`Password must be at most ${PASSWORD_MAX_LENGTH} characters`);
    }
    if (this.#common.has(normalized.toLowerCase())) {
      throw new PasswordTooWeak('Password is too common; choose another');
    }
  }

  /** Hashes and verifications running and waiting (for metrics and tests). */
  get load(): { running: number; waiting: number } {
    return { running: this.#queue.running, waiting: this.#queue.waiting };
  }

  hash(password: string): Promise<string> {
    return this.#limited(() => argon2.hash(normalize(password), this.#parameters));
  }

  async verify(hash: string, password: string): Promise<boolean> {
    return this.#limited(async () => {
      try {
        return await argon2.verify(hash, normalize(password));
      } catch {
        return false;
      }
    });
  }

  /**
   * Spends the same time as a real verification and fails: login for an unknown email must not be
   * distinguishable by timing from a wrong password.
   */
  async verifyDummy(password: string): Promise<false> {
    await this.verify(await this.#dummyHash, password);
    return false;
  }

  /** True when the hash was made with older (weaker) parameters than configured. */
  needsRehash(hash: string): boolean {
    try {
      return argon2.needsRehash(hash, this.#parameters);
    } catch {
      return true;
    }
  }

  async #limited<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await this.#queue.run(work);
    } catch (error) {
      throw error instanceof QueueFull ? serviceBusy(error.retryAfterSeconds) : error;
    }
  }
}

// One form for every Unicode spelling of the same password.
const normalize = (password: string) => password.normalize('NFKC');

declare module 'fastify' {
  interface FastifyInstance {
    passwords: Passwords;
  }
}

export default fp(
  async (app) => {
    const { passwordHashWait } = app.metrics;
    const passwords = new Passwords(app.config.argon2, app.config.passwordHashing, (seconds) =>
      passwordHashWait.observe(seconds),
    );
    await passwords.ready();
    app.decorate('passwords', passwords);
  },
  { name: 'passwords', dependencies: ['config', 'metrics'] },
);
