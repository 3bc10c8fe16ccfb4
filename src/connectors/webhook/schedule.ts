/** The outbound retry schedule, `Retry-After`, and the per-endpoint breaker and rate limit. */
import type { Clock } from '../../core/clock.js';
import type { Rate } from '../../core/units.js';

/** By default: at once, then 1m, 5m, 30m, 2h and 24h after the previous attempt. */
export const DEFAULT_SCHEDULE = ['0s', '1m', '5m', '30m', '2h', '24h'];

/**
 * Delay before attempt `attempt` (0-based), with ± `jitter` (a fraction) applied; undefined when
 * the schedule is exhausted.
 */
export function scheduledDelay(scheduleMs: readonly number[], attempt: number, jitter: number, random: () => number = Math.random): number | undefined {
  const base = scheduleMs[attempt];
  if (base === undefined) return undefined;
  if (jitter <= 0 || base === 0) return base;
  return Math.max(0, Math.round(base * (1 + jitter * (2 * random() - 1))));
}

/** `Retry-After` as a delay in ms: delta-seconds or an HTTP date; undefined when absent or malformed. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  const text = v.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** Statuses whose `Retry-After` is honoured. */
export const RETRY_AFTER_STATUSES = new Set([429, 502, 503, 504]);

/**
 * A consecutive-failure circuit breaker: `failures` failed attempts in a row open it; after
 * `halfOpenAfterMs` one trial attempt is let through; its success closes it.
 */
export class CircuitBreaker {
  private consecutive = 0;
  private openedAt: number | undefined;
  private trial = false;

  constructor(
    private readonly clock: Clock,
    private readonly failures: number,
    private readonly halfOpenAfterMs: number,
  ) {}

  /** 'closed' lets everything through; 'half-open' one trial; 'open' nothing until `retryAt()`. */
  state(): 'closed' | 'open' | 'half-open' {
    if (this.openedAt === undefined) return 'closed';
    if (this.clock.now() - this.openedAt >= this.halfOpenAfterMs) return 'half-open';
    return 'open';
  }

  /** When an open circuit lets a trial through. */
  retryAt(): number {
    return (this.openedAt ?? this.clock.now()) + this.halfOpenAfterMs;
  }

  /** Takes the half-open trial slot; false when it is taken or the circuit is open. */
  tryTrial(): boolean {
    const s = this.state();
    if (s === 'closed') return true;
    if (s === 'open' || this.trial) return false;
    this.trial = true;
    return true;
  }

  success(): void {
    this.consecutive = 0;
    this.openedAt = undefined;
    this.trial = false;
  }

  failure(): void {
    this.consecutive++;
    if (this.openedAt !== undefined || this.consecutive >= this.failures) {
      this.openedAt = this.clock.now();
      this.trial = false;
    }
  }
}

/** A token bucket: `rate.count` tokens per `rate.perMs`, burst of `rate.count`. Clock injected. */
export class RateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    private readonly clock: Clock,
    private readonly rate: Rate,
  ) {
    this.tokens = rate.count;
    this.last = clock.now();
  }

  /** Ms to wait before a token is available (0: take one now). Takes the token when 0. */
  tryTake(): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.rate.count, this.tokens + ((now - this.last) * this.rate.count) / this.rate.perMs);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * this.rate.perMs) / this.rate.count);
  }

  async take(signal?: AbortSignal): Promise<void> {
    for (;;) {
      const wait = this.tryTake();
      if (wait === 0) return;
      await this.clock.sleep(wait, signal);
    }
  }
}
