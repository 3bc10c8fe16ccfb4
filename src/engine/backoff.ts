import { parseDuration } from '../core/units.js';
import type { RetryPolicy } from '../spec/types.js';

/** A retry policy with its durations parsed. */
export interface Backoff {
  readonly attempts: number;
  /** The delay before try number `attempt + 1` (attempt counts from 1). */
  delay(attempt: number): number;
}

export function backoffFrom(policy: RetryPolicy, random: () => number = Math.random): Backoff {
  const initial = parseDuration(policy.initial);
  const max = parseDuration(policy.max);
  return {
    attempts: policy.attempts,
    delay(attempt) {
      const base = policy.backoff === 'fixed' ? initial : Math.min(max, initial * 2 ** Math.max(0, attempt - 1));
      const capped = Math.min(max, base);
      return policy.jitter ? Math.round(random() * capped) : capped;
    },
  };
}
