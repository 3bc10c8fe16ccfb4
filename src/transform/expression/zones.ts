/**
 * UTC offsets of time zones, with a cache: asking Intl costs about a microsecond per value,
 * while a record stream's dates cluster in a few hours and days.
 *
 * The cache holds, per zone, one entry per UTC hour. Filling an hour asks Intl for the offset
 * at its first and its last second: when they agree, the offset holds for the whole hour;
 * when they differ, the first second of the new offset is found by bisection (once) and
 * kept with the hour. This is exact as long as a zone never changes its offset twice within
 * one hour (tz database changes are weeks apart; `fromWallClock` already assumes a day).
 * Half-hour and 45-minute zones, and changes at any second such as the end of local mean
 * time, are covered: Intl's answer depends only on the whole second of an instant.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The formatter of a named zone (throws a RangeError for an unknown one). */
export function formatterFor(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, f);
  }
  return f;
}

export function isFixedZone(zone: string): boolean {
  return zone === 'UTC' || zone === 'Z' || /^[+-]\d{2}:?\d{2}$/.test(zone);
}

export function fixedOffsetMin(zone: string): number {
  if (zone === 'UTC' || zone === 'Z') return 0;
  const sign = zone[0] === '-' ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  return sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4)));
}

/** Offset of named `zone` at instant `ms` in minutes, as Intl tells it (no cache). */
export function intlOffset(ms: number, zone: string): number {
  const parts = formatterFor(zone).formatToParts(new Date(ms));
  const v: Record<string, number> = {};
  for (const p of parts) if (p.type !== 'literal') v[p.type] = Number(p.value);
  const asUtc = Date.UTC(v['year'] as number, (v['month'] as number) - 1, v['day'], v['hour'], v['minute'], v['second']);
  return Math.round((asUtc - (ms - (ms % 1000 + 1000) % 1000)) / 60000);
}

const HOUR_MS = 3_600_000;
/** Instants this close to the end of the Date range are not cached (an hour's samples could leave it). */
const CACHE_LIMIT = 8.64e15 - 2 * HOUR_MS;
/** Hours kept per zone before its cache starts over (about eleven years of hours). */
const MAX_HOURS = 100_000;

/** A change of offset within one hour: the first instant of the new offset, the offsets before and after. */
interface Change {
  readonly at: number;
  readonly before: number;
  readonly after: number;
}

/** Offset in minutes at instant ms. */
export type OffsetFn = (ms: number) => number;

const offsetFns = new Map<string, OffsetFn>();

/** Exported for tests: how many Intl calls the caches made (to show the cache is used). */
export const cacheStats = { intlCalls: 0 };

/**
 * The offset function of `zone` (IANA name, UTC, Z or ±hh:mm), cached per zone; a named zone's
 * answers equal `intlOffset` exactly. Throws a RangeError for an unknown zone.
 */
export function offsetFnFor(zone: string): OffsetFn {
  let fn = offsetFns.get(zone);
  if (fn) return fn;
  if (isFixedZone(zone)) {
    const off = fixedOffsetMin(zone);
    fn = () => off;
  } else {
    formatterFor(zone);
    fn = cachedOffsets(zone);
  }
  offsetFns.set(zone, fn);
  return fn;
}

function cachedOffsets(zone: string): OffsetFn {
  /** hour number → the offset for the whole hour, or NaN when it changes within the hour */
  const hours = new Map<number, number>();
  const changes = new Map<number, Change>();
  const ask = (ms: number): number => {
    cacheStats.intlCalls++;
    return intlOffset(ms, zone);
  };

  function fill(hour: number): number {
    if (hours.size >= MAX_HOURS) {
      hours.clear();
      changes.clear();
    }
    const start = hour * HOUR_MS;
    const last = start + HOUR_MS - 1000;
    const a = ask(start);
    const b = ask(last);
    if (a === b) {
      hours.set(hour, a);
      return a;
    }
    // one change within the hour: bisect over whole seconds, ask(lo) = a, ask(hi) = b
    let lo = start;
    let hi = last;
    while (hi - lo > 1000) {
      const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
      if (ask(mid) === a) lo = mid;
      else hi = mid;
    }
    changes.set(hour, { at: hi, before: a, after: b });
    hours.set(hour, NaN);
    return NaN;
  }

  return (ms) => {
    if (!(ms > -CACHE_LIMIT && ms < CACHE_LIMIT)) return intlOffset(ms, zone);
    const hour = Math.floor(ms / HOUR_MS);
    let off = hours.get(hour);
    if (off === undefined) off = fill(hour);
    if (off === off) return off;
    const c = changes.get(hour) as Change;
    return ms >= c.at ? c.after : c.before;
  };
}
