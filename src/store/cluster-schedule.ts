import type { Clock } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { Store } from './types.js';

export interface ClusterScheduleOptions {
  /** The schedule's name (e.g. the flow's); its leader lease is `schedule:<name>`. */
  readonly name: string;
  /** This worker's id (the engine's owner). */
  readonly owner: string;
  /** Fires at every multiple of this many ms since the epoch (1000: on every second). */
  readonly everyMs: number;
  readonly clock: Clock;
  readonly signal: AbortSignal;
  /**
   * How late past its tick a slot may still fire when the leader died: followers try again
   * this long after the tick, when a dead leader's lease has passed. The lease lasts
   * `everyMs + graceMs`, renewed at every tick.
   * @defaultValue min(everyMs / 2, 2000)
   */
  readonly graceMs?: number;
  /** Runs the tick. `slot` counts ticks since the epoch; `at` is its planned time. */
  onTick(slot: number, at: number): Promise<void> | void;
  /**
   * A tick whose time passed while this worker was busy or paused still fires (late) within
   * this window, so a slow machine does not lose ticks; older ones are skipped.
   * @defaultValue 60000
   */
  readonly catchUpMs?: number;
  /** A store error (unreachable database): the tick is skipped on this worker, the loop goes on. */
  onError?(err: unknown): void;
}

/**
 * Runs a schedule once per tick across every worker on one store. At each tick the workers
 * race for the leader lease `schedule:<name>` (the holder renews it, so it keeps winning);
 * the winner also records the tick's slot as an idempotency key, so even a leadership change
 * inside one tick never fires it twice. When the leader dies, a follower takes over within
 * `graceMs` of the next tick: failover without a missed tick.
 *
 * Resolves when `signal` aborts.
 */
export async function runClusterSchedule(store: Store, o: ClusterScheduleOptions): Promise<void> {
  const graceMs = o.graceMs ?? Math.min(o.everyMs / 2, 2000);
  const leaseMs = o.everyMs + graceMs;
  const leaseName = `schedule:${o.name}`;
  const catchUpMs = o.catchUpMs ?? 60_000;
  const firedTtlMs = Math.max(10 * o.everyMs, 2 * catchUpMs, 60_000);
  let slot = Math.floor(o.clock.now() / o.everyMs) + 1;
  const sleepUntil = async (at: number): Promise<boolean> => {
    try {
      await o.clock.sleep(Math.max(0, at - o.clock.now()), o.signal);
      return true;
    } catch {
      return false;
    }
  };
  /** True when this worker is the leader and the slot is fired (now or before). */
  const tryFire = async (at: number): Promise<boolean> => {
    try {
      if (!(await store.acquireLease(leaseName, o.owner, leaseMs))) return false;
      const [fresh] = await store.remember(leaseName, [String(slot)], firedTtlMs);
      if (fresh) await o.onTick(slot, at);
      return true;
    } catch (err) {
      o.onError?.(err);
      return false;
    }
  };
  const firedByOther = async (): Promise<boolean> => {
    try {
      const [fired] = await store.seen(leaseName, [String(slot)]);
      return fired === true;
    } catch (err) {
      o.onError?.(err);
      return false;
    }
  };
  try {
    while (!o.signal.aborted) {
      const at = slot * o.everyMs;
      if (!(await sleepUntil(at))) break;
      // Until the slot is fired, by this worker as leader or by the leader: a follower looks
      // again every half grace, so it takes over as soon as a dead leader's lease passes.
      while (!(await tryFire(at)) && !(await firedByOther())) {
        if (o.clock.now() - at > catchUpMs) break;
        if (!(await sleepUntil(o.clock.now() + Math.max(20, graceMs / 2)))) break;
      }
      // Next slot in order, even if its time has passed (a slow tick or a paused process);
      // beyond the catch-up window, jump to the next tick to come.
      slot = Math.max(slot + 1, Math.floor((o.clock.now() - catchUpMs) / o.everyMs) + 1);
    }
  } finally {
    await store.releaseLease(leaseName, o.owner).catch((err: unknown) => o.onError?.(new Error(`releasing ${leaseName}: ${errorMessage(err)}`)));
  }
}
