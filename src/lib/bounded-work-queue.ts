// A concurrency limit with a bounded wait: work beyond the limit queues (first come, first served) up to a fixed
// depth, and past that is refused at once instead of growing a backlog no client will wait for.

/** The queue is full: the caller answers 503 with Retry-After. */
export class QueueFull extends Error {
  override name = 'QueueFull';
  constructor(readonly retryAfterSeconds: number) {
    super('the work queue is full');
  }
}

export class BoundedWorkQueue {
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  // Moving average of a task's duration, for an honest Retry-After.
  #averageMs = 0;

  /** `onStart` learns how long each task waited for its slot (0 when one was free), e.g. for a histogram. */
  constructor(
    readonly concurrency: number,
    readonly maxWaiting: number,
    private readonly onStart?: (waitedMs: number) => void,
  ) {}

  /** Tasks waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  get running(): number {
    return this.#running;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    const queued = performance.now();
    if (this.#running < this.concurrency) this.#running += 1;
    else if (this.#waiting.length < this.maxWaiting) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else throw new QueueFull(this.#secondsToDrain());
    const started = performance.now();
    this.onStart?.(started - queued);
    try {
      return await task();
    } finally {
      const elapsed = performance.now() - started;
      this.#averageMs = this.#averageMs === 0 ? elapsed : this.#averageMs * 0.9 + elapsed * 0.1;
      // The slot passes straight to the next waiter, so a newcomer can never overtake the queue.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running -= 1;
    }
  }

  #secondsToDrain(): number {
    const ms = ((this.#waiting.length + this.#running) / this.concurrency) * this.#averageMs;
    return Math.max(1, Math.ceil(ms / 1000));
  }
}
