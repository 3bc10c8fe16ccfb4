import { closureBackend, type ExpressionContext } from '../expression/compile.js';
import { resetBudget } from '../expression/runtime.js';
import type { CheckedExpression, MappingPlan, Path, RowPlan } from './plan.js';

/**
 * A straightforward, deliberately slow interpreter of a mapping plan, written from the
 * documented semantics (docs/transform.md) and sharing no helper with the compiled path
 * except the expression evaluator (its closure backend). Reading paths, type conversion,
 * date parsing with formats and time zones, lookups, writing, flattening and keeping the
 * unmapped fields are all written again here, plainly; the property tests hold the compiled
 * mapping to it.
 */

/** A row failed: the mapping, the field's label, and a reason (compared by mapping and field). */
export class ReferenceFieldError extends Error {
  constructor(
    readonly mapping: string,
    readonly field: string,
    readonly reason: string,
  ) {
    super(`mapping "${mapping}" field ${field}: ${reason}`);
  }
}

export function interpretMapping(plan: MappingPlan, record: unknown, ctx: ExpressionContext = {}, resolve?: (name: string) => MappingPlan): Record<string, unknown> {
  resetBudget();
  return run(plan, record, ctx, resolve);
}

const NOT_ALLOWED = ['__proto__', 'constructor', 'prototype'];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A deep copy, so that the output never shares an object with the input. */
function copy(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(copy);
  if (isObject(v)) {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v)) o[k] = copy(v[k]);
    return o;
  }
  return v;
}

/** One step of a path: own data of objects and arrays; `length` of a string; negative indexes from the end. */
function step(v: unknown, seg: string | number): unknown {
  if (v === null || v === undefined) return undefined;
  if (typeof seg === 'number') {
    if (Array.isArray(v) || typeof v === 'string') {
      const i = seg < 0 ? v.length + seg : seg;
      return i >= 0 && i < v.length ? v[i] : undefined;
    }
    return step(v, String(seg));
  }
  if (typeof v === 'string') return seg === 'length' ? v.length : undefined;
  if (typeof v !== 'object') return undefined;
  if (!Object.prototype.hasOwnProperty.call(v, seg)) return undefined;
  return (v as Record<string, unknown>)[seg];
}

function read(record: unknown, path: Path): unknown {
  let v = record;
  for (const seg of path) v = step(v, seg);
  return v;
}

/** Text of a value: strings as they are, numbers and booleans printed, anything else as JSON. */
function text(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v === true) return 1;
  if (v === false) return 0;
  if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v.trim()))) return Number(v.trim());
  throw new Error('cannot convert to a number');
}

function toBoolean(v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') {
    const t = v.trim().toLowerCase();
    if (t === 'true' || t === 'yes' || t === 'y' || t === '1' || t === 'on') return true;
    if (t === 'false' || t === 'no' || t === 'n' || t === '0' || t === 'off' || t === '') return false;
  }
  throw new Error('cannot convert to a boolean');
}

function convert(row: RowPlan, v: unknown): unknown {
  if (v === null || v === undefined) return v;
  if (row.type === 'string') return text(v);
  if (row.type === 'number') return toNumber(v);
  if (row.type === 'integer') {
    const n = toNumber(v);
    if (!Number.isInteger(n)) throw new Error('not an integer');
    return n;
  }
  if (row.type === 'boolean') return toBoolean(v);
  if (row.type === 'date') return v === '' ? null : new Date(toInstant(v, row.format, row.timezone)).toISOString();
  return v;
}

// ---- dates ----

interface Wall {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  milli: number;
}

const MONTH_NAMES = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];

function daysIn(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] as number;
}

/** Milliseconds of a wall-clock time read as UTC (any year, including 0–99). */
function wallAsUtc(w: Wall): number {
  const d = new Date(0);
  d.setUTCFullYear(w.year, w.month - 1, w.day);
  d.setUTCHours(w.hour, w.minute, w.second, w.milli);
  return d.getTime();
}

/** `+01:00`, `-0530`, `Z`, `UTC` → minutes east of UTC; undefined for a named zone. */
function fixedOffset(zone: string): number | undefined {
  if (zone === 'UTC' || zone === 'Z' || zone === 'z') return 0;
  const m = /^([+-])(\d\d):?(\d\d)$/.exec(zone);
  if (!m) return undefined;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
}

/** The wall-clock fields of instant `ms` in a named zone, as told by Intl. */
const intl = new Map<string, Intl.DateTimeFormat>();
function wallIn(ms: number, zone: string): string {
  let f = intl.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
    intl.set(zone, f);
  }
  const parts = f.formatToParts(new Date(ms));
  const get = (t: string): number => Number(parts.find((p) => p.type === t)?.value);
  return [get('year'), get('month'), get('day'), get('hour'), get('minute'), get('second')].join(' ');
}

/**
 * The instant whose wall-clock time in `zone` is `w`, by trying every offset from -14 h to
 * +14 h in quarter hours. A time that occurs twice (clocks set back) is the earlier one; a
 * time that does not exist (clocks set forward) is read with the offset before the change.
 */
function inZone(w: Wall, zone: string): number {
  const wall = wallAsUtc(w);
  const fixed = fixedOffset(zone);
  if (fixed !== undefined) return wall - fixed * 60000;
  const wanted = wallIn(wall, 'UTC');
  const hits: number[] = [];
  for (let off = -14 * 60; off <= 14 * 60; off += 15) {
    const t = wall - off * 60000;
    if (wallIn(t, zone) === wanted) hits.push(t);
  }
  if (hits.length > 0) return Math.min(...hits);
  // in a gap: the offset in force a day before the wall time
  const before = wall - 86_400_000;
  for (let off = -14 * 60; off <= 14 * 60; off += 15) {
    if (wallIn(before - off * 60000, zone) === wallIn(before, 'UTC')) return wall - off * 60000;
  }
  throw new Error('no offset found');
}

function checkedWall(w: Wall): Wall {
  const ok =
    w.month >= 1 && w.month <= 12 && w.day >= 1 && w.day <= daysIn(w.year, w.month) && w.hour <= 23 && w.minute <= 59 && w.second <= 60;
  if (!ok) throw new Error('not a date');
  return w;
}

function isoInstant(s: string, zone: string): number {
  const m = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?)?\s*(Z|z|[+-]\d\d(?::?\d\d)?)?$/.exec(s);
  if (!m) throw new Error('not a date');
  const frac = m[7] ?? '';
  if (frac.length > 9) throw new Error('not a date');
  const w = checkedWall({
    year: Number(m[1]), month: Number(m[2]), day: Number(m[3]),
    hour: Number(m[4] ?? 0), minute: Number(m[5] ?? 0), second: Number(m[6] ?? 0), milli: Number((frac + '000').slice(0, 3)),
  });
  const off = m[8];
  if (off === undefined) return inZone(w, zone);
  return inZone(w, off.length === 3 ? `${off}00` : off);
}

/** Format tokens, longest first at each position; anything else (and [text]) is literal. */
const TOKENS = ['YYYY', 'YY', 'MMMM', 'MMM', 'MM', 'M', 'DD', 'D', 'HH', 'H', 'hh', 'h', 'mm', 'ss', 'SSS', 'A', 'a', 'Z', 'X', 'x'];
const PATTERN: Record<string, string> = {
  YYYY: '\\d{4}', YY: '\\d{2}', MMMM: '[A-Za-z]+', MMM: '[A-Za-z]{3}', MM: '\\d{2}', M: '\\d{1,2}', DD: '\\d{2}', D: '\\d{1,2}',
  HH: '\\d{2}', H: '\\d{1,2}', hh: '\\d{2}', h: '\\d{1,2}', mm: '\\d{2}', ss: '\\d{2}', SSS: '\\d{3}', A: '[AaPp][Mm]', a: '[AaPp][Mm]',
  Z: 'Z|[+-]\\d{2}:?\\d{2}', X: '-?\\d+(?:\\.\\d+)?', x: '-?\\d+',
};

function formatInstant(s: string, format: string, zone: string): number {
  const names: string[] = [];
  let re = '';
  let i = 0;
  while (i < format.length) {
    if (format[i] === '[') {
      const end = format.indexOf(']', i);
      for (const ch of format.slice(i + 1, end)) re += `\\u{${(ch.codePointAt(0) as number).toString(16)}}`;
      i = end + 1;
      continue;
    }
    const tok = TOKENS.find((t) => format.slice(i, i + t.length) === t);
    if (tok) {
      names.push(tok);
      re += `(${PATTERN[tok]})`;
      i += tok.length;
    } else {
      re += `\\u{${(format.codePointAt(i) as number).toString(16)}}`;
      i += (format.codePointAt(i) as number) > 0xffff ? 2 : 1;
    }
  }
  const m = new RegExp(`^\\s*${re}\\s*$`, 'u').exec(s);
  if (!m) throw new Error('not a date');
  const w: Wall = { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0, milli: 0 };
  let pm = 0;
  let offset: string | undefined;
  for (let k = 0; k < names.length; k++) {
    const t = m[k + 1] as string;
    const n = Number(t);
    switch (names[k]) {
      case 'X': return n * 1000;
      case 'x': return n;
      case 'YYYY': w.year = n; break;
      case 'YY': w.year = n >= 70 ? 1900 + n : 2000 + n; break;
      case 'MMMM':
      case 'MMM': w.month = MONTH_NAMES.findIndex((name) => name.slice(0, 3) === t.slice(0, 3).toLowerCase()) + 1 || NaN; break;
      case 'MM': case 'M': w.month = n; break;
      case 'DD': case 'D': w.day = n; break;
      case 'HH': case 'H': w.hour = n; break;
      case 'hh': case 'h': w.hour = n % 12; break;
      case 'mm': w.minute = n; break;
      case 'ss': w.second = n; break;
      case 'SSS': w.milli = n; break;
      case 'A': case 'a': pm = t.toLowerCase() === 'pm' ? 12 : 0; break;
      case 'Z': offset = t; break;
    }
  }
  w.hour += pm;
  checkedWall(w);
  return inZone(w, offset ?? zone);
}

/** A date value to epoch milliseconds: epoch ms as a number (seconds with format X), ISO 8601 text, or text in the format. */
function toInstant(v: unknown, format: string | undefined, zone: string): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error('not a date');
    return format === 'X' ? v * 1000 : v;
  }
  if (typeof v !== 'string') throw new Error('not a date');
  return format === undefined ? isoInstant(v, zone) : formatInstant(v, format, zone);
}

// ---- writing ----

/** Writes at a path, making objects (or arrays before an index) where there are none. */
function writeAt(o: Record<string, unknown>, path: Path, v: unknown): void {
  let here: Record<string | number, unknown> = o;
  path.forEach((seg, i) => {
    if (i === path.length - 1) {
      here[seg] = v;
      return;
    }
    const wantArray = typeof path[i + 1] === 'number';
    const next = here[seg];
    const fits = wantArray ? Array.isArray(next) : isObject(next);
    if (!fits) here[seg] = wantArray ? [] : {};
    here = here[seg] as Record<string | number, unknown>;
  });
}

/** Leaves of nested objects as `prefix<sep>key` fields of `o` (arrays and scalars are leaves). */
function flatten(o: Record<string, unknown>, prefix: string, sep: string, v: unknown): void {
  if (!isObject(v)) {
    if (prefix !== '') o[prefix] = v;
    return;
  }
  for (const k of Object.keys(v)) {
    if (NOT_ALLOWED.includes(k)) continue;
    flatten(o, prefix === '' ? k : prefix + sep + k, sep, v[k]);
  }
}

function evaluate(e: CheckedExpression, plan: MappingPlan, current: unknown, record: unknown, ctx: ExpressionContext): unknown {
  return closureBackend(e.tree, e.statics, plan.env)(current, record, ctx);
}

function truthy(v: unknown): boolean {
  return !(v === false || v === null || v === undefined || v === 0 || v === '' || Number.isNaN(v));
}

function run(plan: MappingPlan, r: unknown, ctx: ExpressionContext, resolve?: (name: string) => MappingPlan): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (plan.keep && isObject(r)) {
    for (const k of Object.keys(r)) if (!plan.notCopied.has(k) && !NOT_ALLOWED.includes(k)) out[k] = copy(r[k]);
  }
  const write = (row: RowPlan, v: unknown): void => {
    if (row.flatten !== undefined) flatten(out, row.to.join('.'), row.flatten, copy(v));
    else writeAt(out, row.to, copy(v));
  };
  for (const row of plan.rows) {
    let v: unknown;
    try {
      if (row.when !== undefined && !truthy(evaluate(row.when, plan, r, r, ctx))) continue;
      if (row.from !== undefined) {
        v = read(r, row.from);
        if (v === undefined) {
          if (row.hasDefault) write(row, row.default);
          else if (row.missing === 'null') write(row, null);
          else if (row.missing === 'error') throw new ReferenceFieldError(plan.name, row.label, 'the source field is missing');
          continue;
        }
      } else if (row.transforms.length > 0) v = r;
      for (const t of row.transforms) v = evaluate(t, plan, v, r, ctx);
      if (row.lookup !== undefined) v = v === null || v === undefined ? null : row.lookup.has(text(v)) ? row.lookup.get(text(v)) : null;
      if (row.each !== undefined && v !== null && v !== undefined) {
        if (!Array.isArray(v)) throw new Error('each expects an array');
        const sub = typeof row.each === 'string' ? (resolve as (n: string) => MappingPlan)(row.each) : row.each;
        v = v.map((item) => run(sub, item, ctx, resolve));
      }
      v = convert(row, v);
      if ((v === null || v === undefined) && row.hasDefault) v = row.default;
      write(row, v === undefined ? null : v);
    } catch (err) {
      // an error of an inner mapping (each) names its own field
      if (err instanceof ReferenceFieldError) throw err;
      throw new ReferenceFieldError(plan.name, row.label, (err as Error).message);
    }
  }
  return out;
}
