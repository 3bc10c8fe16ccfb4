import type { BackoffOptions } from '../core/durable.js';

/** The bounds of a backoff as the stores' SQL takes them: whole milliseconds, none negative. */
export function backoffBounds(b: BackoffOptions): { initialMs: number; maxMs: number } {
  const whole = (ms: number): number => (Number.isFinite(ms) ? Math.max(0, Math.round(ms)) : 0);
  return { initialMs: whole(b.initialMs), maxMs: whole(b.maxMs) };
}
