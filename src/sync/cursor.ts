/** Cursor values: what is comparable, how they order, and how far a look-back window reaches. */
import { parseDuration } from '../core/units.js';

/** A timestamp as databases print it (`2026-01-01 10:00:00.123456+00`) in a form Date.parse reads. */
function isoish(s: string): string {
  return s.replace(/^(\d{4}-\d\d-\d\d) (\d)/, '$1T$2').replace(/([+-]\d\d)$/, '$1:00');
}

/** The value as a number that orders like the cursor, or undefined when it is not comparable. */
export function cursorOrder(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : v.getTime();
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    if (!Number.isNaN(n)) return n;
    const t = Date.parse(isoish(v.trim()));
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

function isTimestamp(v: unknown): boolean {
  return v instanceof Date || (typeof v === 'string' && Number.isNaN(Number(v)) && cursorOrder(v) !== undefined);
}

/** `value` moved back by the look-back window: a duration for timestamps, a number for numeric cursors. */
export function lookBack(value: unknown, lookback: string | number | undefined): unknown {
  if (lookback === undefined || value === undefined || value === null) return value;
  if (isTimestamp(value)) {
    const ms = typeof lookback === 'number' ? lookback : parseDuration(lookback);
    return new Date((cursorOrder(value) as number) - ms).toISOString();
  }
  const n = cursorOrder(value);
  if (n === undefined) return value;
  const by = typeof lookback === 'number' ? lookback : Number(lookback);
  return Number.isFinite(by) ? n - by : n;
}

/** Cursor values travel in checkpoints as JSON: Dates as ISO text. */
export function storable(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'bigint') return v.toString();
  return v;
}
