import type { Clock } from './clock.js';

export type LeaseLoss = 'taken' | 'stale';

/** A named lease this worker holds and renews (`keepLease`). */
export interface KeptLease {
  /**
   * Aborts once this worker can no longer be sure it holds the lease: another owner has it, or
   * it was not renewed for two thirds of its ttl (failed renewals, or a store that hangs).
   */
  readonly lost: AbortSignal;
  /** Ends the renewals and waits for one in flight, so none takes the lease again after a release. */
  stop(): Promise<void>;
}

export interface KeepLeaseOptions {
  readonly store: { acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean> };
  readonly name: string;
  readonly owner: string;
  readonly ttlMs: number;
  readonly clock: Clock;
  /** The reason `lost` aborts with: another owner has the lease (`taken`), or it went unrenewed (`stale`). */
  readonly lostError: (why: LeaseLoss) => Error;
  /** Told of a renewal that failed (the lease may still be held). */
  readonly onRenewFailed?: (err: unknown) => void;
}

/**
 * Renews a lease that was just acquired every third of its ttl, one renewal at a time, until
 * `stop`. Shared by every holder of a lease for as long as some work lasts: leader-only
 * sources, sync runs, MQTT session slots.
 */
export function keepLease(o: KeepLeaseOptions): KeptLease {
  const lost = new AbortController();
  const lose = (why: LeaseLoss): void => {
    if (!lost.signal.aborted) lost.abort(o.lostError(why));
  };
  let renewedAt = o.clock.now();
  let renewing: Promise<void> | undefined;
  const stale = (): boolean => o.clock.now() - renewedAt > (2 * o.ttlMs) / 3;
  const timer = setInterval(() => {
    if (lost.signal.aborted) return;
    if (renewing) {
      if (stale()) lose('stale');
      return;
    }
    // a store may throw before its promise (a closed SQLite connection): a rejection here too
    renewing = Promise.resolve()
      .then(() => o.store.acquireLease(o.name, o.owner, o.ttlMs))
      .then(
        (still) => {
          if (still) renewedAt = o.clock.now();
          else lose('taken');
        },
        (err: unknown) => {
          o.onRenewFailed?.(err);
          if (stale()) lose('stale');
        },
      )
      .finally(() => (renewing = undefined));
  }, Math.max(100, Math.floor(o.ttlMs / 3)));
  timer.unref();
  return {
    lost: lost.signal,
    async stop() {
      clearInterval(timer);
      await renewing;
    },
  };
}
