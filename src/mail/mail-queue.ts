// Delivery off the request path: each message is tried, retried on transient failures, and reported once.
import type { FastifyBaseLogger } from 'fastify';
import type { MailKind, MailTransport, OutgoingMail } from './transport.js';

/** Waits between attempts; the number of entries is the number of retries. */
export const DEFAULT_RETRY_DELAYS_MS = [2_000, 10_000, 60_000];

export interface DeliveryHooks {
  /** The message will not be delivered (a permanent failure, retries exhausted, or shutdown): undo what it carried. */
  onUndelivered?: () => Promise<void>;
}

interface SmtpError {
  code?: string;
  responseCode?: number;
  command?: string;
}

// Network trouble and 4xx replies may pass; 5xx replies, bad credentials or a bad envelope will not.
const TRANSIENT_CODES = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ECONNREFUSED', 'ECONNRESET']);

export function isTransient(error: unknown): boolean {
  const { code, responseCode } = (error ?? {}) as SmtpError;
  if (typeof responseCode === 'number') return responseCode >= 400 && responseCode < 500;
  return code !== undefined && TRANSIENT_CODES.has(code);
}

/** Messages of one kind delivered and given up so far (monotonic, for metrics). */
export interface DeliveryCount {
  kind: MailKind;
  sent: number;
  failed: number;
}

export class MailQueue {
  readonly #pending = new Set<Promise<void>>();
  readonly #deliveries = new Map<MailKind, DeliveryCount>();
  readonly #wakeups = new Set<() => void>();
  #closing = false;

  constructor(
    private readonly transport: MailTransport,
    private readonly log: FastifyBaseLogger,
    private readonly retryDelaysMs: readonly number[] = DEFAULT_RETRY_DELAYS_MS,
  ) {}

  get kind(): MailTransport['kind'] {
    return this.transport.kind;
  }

  /** Queues a message and returns at once; the outcome is logged (without the message body). */
  send(mail: OutgoingMail, hooks: DeliveryHooks = {}): void {
    // Shutting down: the process may be gone before a first attempt. Mail accepted earlier is still delivered (its
    // attempt in flight is awaited); what arrives now is refused, and its token voided as for any undelivered mail.
    if (this.#closing) {
      this.log.error({ mail: mail.kind }, 'mail not sent: shutting down');
      const undo = Promise.resolve(hooks.onUndelivered?.())
        .catch((undoError: unknown) => {
          this.log.error({ err: undoError, mail: mail.kind }, 'could not void the token of an undelivered mail');
        })
        .finally(() => this.#pending.delete(undo));
      // Tracked like a delivery, so close() waits for it while the database is still open.
      this.#pending.add(undo);
      return;
    }
    const delivery = this.#deliver(mail, hooks).finally(() => this.#pending.delete(delivery));
    this.#pending.add(delivery);
  }

  /** How many messages of each kind were sent and given up since the queue opened. */
  deliveries(): DeliveryCount[] {
    return [...this.#deliveries.values()];
  }

  /** Resolves when every queued message has been delivered or given up. */
  async idle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  /** Stops retrying (messages waiting for a retry are given up), waits for attempts in flight, closes the transport. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const wake of this.#wakeups) wake();
    await this.idle();
    this.transport.close();
  }

  async #deliver(mail: OutgoingMail, hooks: DeliveryHooks): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.transport.send(mail);
        this.#count(mail.kind, 'sent');
        this.log.info({ mail: mail.kind, attempts: attempt }, 'mail sent');
        return;
      } catch (error) {
        const retryIn = this.retryDelaysMs[attempt - 1];
        if (retryIn !== undefined && isTransient(error) && !this.#closing) {
          this.log.warn({ mail: mail.kind, attempt, ...describe(error) }, 'mail delivery failed; will retry');
          await this.#sleep(retryIn);
          if (!this.#closing) continue;
        }
        // Never the message itself: it holds a live token.
        this.#count(mail.kind, 'failed');
        this.log.error({ mail: mail.kind, attempts: attempt, ...describe(error) }, 'mail not delivered');
        await hooks.onUndelivered?.().catch((undoError: unknown) => {
          this.log.error({ err: undoError, mail: mail.kind }, 'could not void the token of an undelivered mail');
        });
        return;
      }
    }
  }

  #count(kind: MailKind, outcome: 'sent' | 'failed'): void {
    let count = this.#deliveries.get(kind);
    if (!count) {
      count = { kind, sent: 0, failed: 0 };
      this.#deliveries.set(kind, count);
    }
    count[outcome] += 1;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#wakeups.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#wakeups.add(wake);
    });
  }
}

/** What a failure log line may say: the error's codes, not its text (an SMTP reply can echo the message). */
function describe(error: unknown): Record<string, unknown> {
  const { code, responseCode, command } = (error ?? {}) as SmtpError;
  return { code, responseCode, command };
}
