import type { Clock } from '../core/clock.js';

interface Timer {
  at: number;
  resolve: () => void;
  reject: (e: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** A clock that moves only when told: a 24-hour retry schedule runs in milliseconds. */
export class FakeClock implements Clock {
  private current: number;
  private timers: Timer[] = [];

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const timer: Timer = { at: this.current + Math.max(0, ms), resolve, reject, signal, onAbort: undefined };
      if (signal) {
        timer.onAbort = () => {
          this.timers = this.timers.filter((t) => t !== timer);
          reject(signal.reason);
        };
        signal.addEventListener('abort', timer.onAbort, { once: true });
      }
      this.timers.push(timer);
    });
  }

  /** Number of sleepers waiting. */
  get pending(): number {
    return this.timers.length;
  }

  /** The time the next sleeper wakes, if any. */
  nextAt(): number | undefined {
    let min: number | undefined;
    for (const t of this.timers) if (min === undefined || t.at < min) min = t.at;
    return min;
  }

  /** Moves time forward, waking sleepers in order and letting their continuations run. */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.current = Math.max(this.current, due.at);
      this.timers = this.timers.filter((t) => t !== due);
      if (due.signal && due.onAbort) due.signal.removeEventListener('abort', due.onAbort);
      due.resolve();
      await flush();
    }
    this.current = target;
    await flush();
  }

  /** Sets the time without waking anyone (for stores that read now()). */
  set(ms: number): void {
    this.current = ms;
  }
}

/** Lets pending promise continuations and I/O callbacks run. */
export async function flush(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}
