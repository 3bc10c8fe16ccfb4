/** Backoff delays and `Retry-After` parsing. Pure: time and randomness come in as arguments. */

import type { BackoffOptions } from '../core/durable.js';

export type { BackoffOptions } from '../core/durable.js';

/**
 * The delay before retry number `attempt` (1 = the first retry). Exponential with full
 * jitter ("Exponential Backoff and Jitter", AWS Architecture Blog): random(0, min(max, initial·2^(n-1))).
 * A store's `retry` with `{ backoff }` computes the same delay in SQL.
 */
export function backoffDelay(options: BackoffOptions, attempt: number, random: () => number = Math.random): number {
  const n = Math.max(1, attempt);
  const ceiling =
    options.kind === 'fixed' ? Math.min(options.maxMs, options.initialMs) : Math.min(options.maxMs, options.initialMs * 2 ** Math.min(n - 1, 52));
  return Math.round(options.jitter ? random() * ceiling : ceiling);
}

/**
 * A `Retry-After` header as milliseconds from `now`: delta-seconds (`120`) or an HTTP date
 * (`Wed, 21 Oct 2015 07:28:00 GMT`). Undefined when absent or unreadable; 0 for a date past.
 */
export function parseRetryAfter(value: string | undefined | null, now: number): number | undefined {
  if (value === undefined || value === null) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
