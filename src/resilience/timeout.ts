/**
 * A signal that aborts when `parent` aborts or `ms` pass (real time: the deadline is enforced
 * on the socket by undici, not on the injected clock). `clear()` releases the timer.
 */
export function deadlineSignal(ms: number, parent?: AbortSignal): { signal: AbortSignal; clear: () => void; timedOut: () => boolean } {
  const controller = new AbortController();
  let fired = false;
  const timer = setTimeout(() => {
    fired = true;
    controller.abort(new DOMException(`timed out after ${ms}ms`, 'TimeoutError'));
  }, ms);
  const onAbort = (): void => controller.abort(parent?.reason);
  if (parent) {
    if (parent.aborted) controller.abort(parent.reason);
    else parent.addEventListener('abort', onAbort, { once: true });
  }
  return {
    signal: controller.signal,
    clear: () => {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    },
    timedOut: () => fired,
  };
}

/**
 * The abort handle of one request attempt, cheaper than an AbortController on the per-request
 * path: undici accepts an EventEmitter-like `signal` (`on` to check it, then `once('abort')` and
 * `removeListener`), and an attempt has one or two abort listeners at most, so a small list
 * stands in for an EventEmitter and its once-wrappers. `abort(reason)` fires once.
 */
export class AttemptAbort {
  aborted = false;
  reason: unknown = undefined;
  /** Set by a `Deadlines` queue when the attempt ran out of time. */
  timedOut = false;
  /** When a `Deadlines` queue aborts it (performance.now() ms). */
  deadline = 0;
  /** Finished: a `Deadlines` queue skips it. */
  done = false;
  /** The signal the attempt runs under, if any (`Deadlines.abortUnder`). */
  parent: AbortSignal | undefined = undefined;
  private listeners: (() => void)[] | undefined = undefined;

  /** Adds an `abort` listener (other events never fire). It runs at most once: abort fires once. */
  on(event: string, listener: () => void): this {
    if (event === 'abort' && !this.aborted) (this.listeners ??= []).push(listener);
    return this;
  }

  once(event: string, listener: () => void): this {
    return this.on(event, listener);
  }

  addListener(event: string, listener: () => void): this {
    return this.on(event, listener);
  }

  removeListener(event: string, listener: () => void): this {
    const list = this.listeners;
    if (event === 'abort' && list) {
      const i = list.lastIndexOf(listener);
      if (i >= 0) list.splice(i, 1);
    }
    return this;
  }

  off(event: string, listener: () => void): this {
    return this.removeListener(event, listener);
  }

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new DOMException('This operation was aborted', 'AbortError');
    const list = this.listeners;
    this.listeners = undefined;
    if (list) for (const listener of list) listener();
  }
}

/**
 * Deadlines of attempts that share one timeout: they expire in the order they started, so a
 * FIFO and a single timer (re-armed for the oldest live attempt when it fires) replace a
 * setTimeout/clearTimeout pair per attempt. Timing stays exact: the timer fires at the oldest
 * attempt's deadline, never later.
 */
export class Deadlines {
  private readonly queue: (AttemptAbort | undefined)[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly ms: number,
    private readonly reason: () => unknown = () => new DOMException(`timed out after ${ms}ms`, 'TimeoutError'),
  ) {}

  /** A new attempt whose deadline is `ms` from now; call `finish` when it is over. */
  start(): AttemptAbort {
    const a = new AttemptAbort();
    a.deadline = performance.now() + this.ms;
    this.queue.push(a);
    if (this.timer === undefined) this.arm(a.deadline);
    return a;
  }

  finish(a: AttemptAbort): void {
    a.done = true;
    this.compact();
    if (this.head === this.queue.length && this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  /** Aborts the attempts not finished yet that run under `parent`. */
  abortUnder(parent: AbortSignal, reason: unknown): void {
    for (let i = this.head; i < this.queue.length; i++) {
      const a = this.queue[i];
      if (a && !a.done && a.parent === parent) a.abort(reason);
    }
  }

  /** Attempts not finished yet (tests). */
  get pending(): number {
    let n = 0;
    for (let i = this.head; i < this.queue.length; i++) if (!(this.queue[i] as AttemptAbort).done) n++;
    return n;
  }

  private compact(): void {
    while (this.head < this.queue.length && (this.queue[this.head] as AttemptAbort).done) this.queue[this.head++] = undefined;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  private arm(at: number): void {
    this.timer = setTimeout(() => this.fire(), Math.max(0, Math.ceil(at - performance.now())));
  }

  private fire(): void {
    this.timer = undefined;
    const now = performance.now();
    // timers may fire a hair early against performance.now(): allow 1 ms
    while (this.head < this.queue.length) {
      const a = this.queue[this.head] as AttemptAbort;
      if (!a.done && a.deadline > now + 1) break;
      this.queue[this.head++] = undefined;
      if (!a.done) {
        a.done = true;
        a.timedOut = true;
        a.abort(this.reason());
      }
    }
    this.compact();
    const next = this.queue[this.head];
    if (next) this.arm(next.deadline);
  }
}
