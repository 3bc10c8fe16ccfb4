import { SignalWatch } from './signal-watch.js';

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  readonly signal: AbortSignal | undefined;
}

/**
 * At most `maxConcurrent` calls run at once; the rest wait in order and are never rejected
 * for lack of room (an aborted signal takes a waiting call out of the queue). A counter and a
 * FIFO: a call that finds room runs without any extra allocation, which matters on the
 * per-request path. Waiters under one signal share one abort listener.
 */
export class Bulkhead {
  private active = 0;
  private queue: Waiter[] = [];
  private head = 0;
  /** An abort takes the waiters under its signal out of the queue and rejects them. */
  private readonly aborts = new SignalWatch((signal) => this.dropAborted(signal));

  constructor(readonly maxConcurrent: number) {
    this.maxConcurrent = Math.max(1, maxConcurrent);
  }

  execute<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const entered = this.enter(signal);
    return entered === undefined ? this.run(fn) : entered.then(() => this.run(fn));
  }

  /**
   * Takes a slot for a call the caller runs itself (`execute` without its closure and promise):
   * undefined when the slot is taken now, else a promise that resolves once it is (in order), or
   * rejects with the signal's reason. Every slot taken is given back with `leave()`.
   */
  enter(signal?: AbortSignal): Promise<void> | undefined {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    if (this.active < this.maxConcurrent && this.head === this.queue.length) {
      this.active++;
      return undefined;
    }
    // next() hands the slot over already taken, so no newcomer can slip in between
    return this.wait(signal);
  }

  /** Gives back a slot taken with `enter`. */
  leave(): void {
    this.active--;
    this.next();
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
      this.leave();
    }
  }

  private wait(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal };
      this.queue.push(waiter);
      if (signal) this.aborts.watch(signal);
    });
  }

  private dropAborted(signal: AbortSignal): void {
    const aborted: Waiter[] = [];
    const rest: Waiter[] = [];
    for (let i = this.head; i < this.queue.length; i++) {
      const w = this.queue[i] as Waiter;
      (w.signal === signal ? aborted : rest).push(w);
    }
    if (aborted.length === 0) return;
    this.queue = rest;
    this.head = 0;
    for (const w of aborted) w.reject(signal.reason as Error);
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
    this.active++;
    w.resolve();
  }
}
