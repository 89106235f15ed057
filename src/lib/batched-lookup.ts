// Concurrent lookups by key, coalesced into one query per batch: DataLoader's idea without its cache. Each query's
// fixed cost (a pool checkout, a write and a read on the socket, the result's row description) is paid once per
// batch instead of once per request, which is most of what a primary-key read costs the service.
//
// Freshness is the point of not caching: a key joins only a batch that has not been sent yet, so every lookup reads
// the database after it was asked, and sees every write that committed before.

interface Waiter<Row> {
  resolve(row: Row | undefined): void;
  reject(error: unknown): void;
}

export interface BatchLimits {
  /** Keys per query. */
  maxBatch: number;
  /** Queries at once; lookups beyond them gather into the next batch. */
  maxInFlight: number;
}

export class BatchedLookup<Row> {
  // Insertion-ordered: first asked, first sent. Waiters for the same key share its one row.
  readonly #pending = new Map<string, Waiter<Row>[]>();
  #inFlight = 0;
  #scheduled = false;

  /** `loadMany` returns the rows it found by key; a key it leaves out resolves to undefined. */
  constructor(
    private readonly loadMany: (keys: string[]) => Promise<Map<string, Row>>,
    private readonly limits: BatchLimits = { maxBatch: 64, maxInFlight: 4 },
  ) {}

  load(key: string): Promise<Row | undefined> {
    return new Promise((resolve, reject) => {
      const waiters = this.#pending.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else this.#pending.set(key, [{ resolve, reject }]);
      this.#schedule();
    });
  }

  // setImmediate, not a microtask: it runs once this turn of the event loop has read every socket that was ready,
  // so the lookups those requests made go out together, at the cost of at most one turn of latency.
  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.limits.maxInFlight || this.#pending.size === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#dispatch();
    });
  }

  #dispatch(): void {
    while (this.#pending.size > 0 && this.#inFlight < this.limits.maxInFlight) {
      const batch = new Map<string, Waiter<Row>[]>();
      for (const [key, waiters] of this.#pending) {
        batch.set(key, waiters);
        this.#pending.delete(key);
        if (batch.size === this.limits.maxBatch) break;
      }
      this.#inFlight += 1;
      this.#send(batch).finally(() => {
        this.#inFlight -= 1;
        this.#schedule();
      });
    }
  }

  async #send(batch: Map<string, Waiter<Row>[]>): Promise<void> {
    try {
      const rows = await this.loadMany([...batch.keys()]);
      for (const [key, waiters] of batch) {
        const row = rows.get(key);
        for (const waiter of waiters) waiter.resolve(row);
      }
    } catch (error) {
      for (const waiters of batch.values()) for (const waiter of waiters) waiter.reject(error);
    }
  }
}
