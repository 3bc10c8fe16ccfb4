import { Cron } from 'croner';
import type { Clock } from '../core/clock.js';
import { parseDuration } from '../core/units.js';

/**
 * When a polling component runs next: a cron expression (croner, seconds optional, UTC by
 * default) or a fixed interval (`30s`). Times come from the injected clock.
 */
export interface Schedule {
  /** Milliseconds from `now` until the next run. */
  delayFrom(now: number): number;
  readonly describe: string;
}

export function parseSchedule(spec: { schedule?: string; interval?: string | number; timezone?: string }): Schedule | undefined {
  if (spec.schedule) {
    const cron = new Cron(spec.schedule, { paused: true, timezone: spec.timezone ?? 'UTC' });
    return {
      describe: spec.schedule,
      delayFrom(now) {
        const next = cron.nextRun(new Date(now));
        return next ? Math.max(0, next.getTime() - now) : Number.POSITIVE_INFINITY;
      },
    };
  }
  if (spec.interval !== undefined) {
    const ms = parseDuration(spec.interval);
    return { describe: `every ${ms}ms`, delayFrom: () => ms };
  }
  return undefined;
}

/** Sleeps until the next run; false when the signal aborted (stop) or no run is left. */
export async function waitForNextRun(schedule: Schedule, clock: Clock, signal: AbortSignal): Promise<boolean> {
  const delay = schedule.delayFrom(clock.now());
  if (!Number.isFinite(delay)) return false;
  try {
    await clock.sleep(delay, signal);
    return !signal.aborted;
  } catch {
    return false;
  }
}
