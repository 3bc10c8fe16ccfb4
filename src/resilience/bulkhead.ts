interface Waiter {
  readonly resolve: () => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: (() => void) | undefined;
}

/**
 * At most `maxConcurrent` calls run at once; the rest wait in order and are never rejected
 * for lack of room (an aborted signal takes a waiting call out of the queue). A counter and a
 * FIFO: a call that finds room runs without any extra allocation, which matters on the
 * per-request path.
 */
export class Bulkhead {
  private active = 0;
  private readonly queue: Waiter[] = [];
  private head = 0;

  constructor(readonly maxConcurrent: number) {
    this.maxConcurrent = Math.max(1, maxConcurrent);
  }

  execute<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    if (this.active < this.maxConcurrent && this.head === this.queue.length) {
      this.active++;
      return this.run(fn);
    }
    // next() hands the slot over already taken, so no newcomer can slip in between
    return this.wait(signal).then(() => this.run(fn));
  }

  /** Calls running now. */
  get executing(): number {
    return this.active;
  }

  /** Calls waiting for room. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** Runs `fn` in a slot already counted in `active`. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } finally {
      this.active--;
      this.next();
    }
  }

  private wait(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let onAbort: (() => void) | undefined;
      if (signal) {
        onAbort = (): void => {
          const i = this.queue.indexOf(waiter, this.head);
          if (i >= 0) this.queue.splice(i, 1);
          reject(signal.reason as Error);
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
      const waiter: Waiter = { resolve, signal, onAbort };
      this.queue.push(waiter);
    });
  }

  private next(): void {
    if (this.active >= this.maxConcurrent || this.head >= this.queue.length) return;
    const w = this.queue[this.head] as Waiter;
    this.queue[this.head] = undefined as unknown as Waiter;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
    this.active++;
    w.resolve();
  }
}
