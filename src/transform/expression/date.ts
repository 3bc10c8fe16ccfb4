import { IxError } from '../../core/errors.js';
import { fixedOffsetMin, offsetFnFor, type OffsetFn } from './zones.js';

/** Dates for expressions and mappings: parse with a format and a time zone; format back. */

/** Throws a readable error when `zone` is not an IANA time zone (or UTC / +01:00). */
export function checkZone(zone: string): string {
  try {
    offsetFnFor(zone);
  } catch {
    throw new IxError('IX_EXPR_ARGUMENTS', { expr: zone, detail: `unknown time zone "${zone}" (use an IANA name such as Europe/Berlin, or UTC, or +01:00)` });
  }
  return zone;
}

/** Offset of `zone` from UTC at instant `ms`, in minutes (Europe/Berlin in summer: 120). */
export function zoneOffset(ms: number, zone: string): number {
  return offsetFnFor(zone)(ms);
}

const DAY_MS = 86_400_000;

/**
 * The instant whose wall-clock time in `zone` is the given fields (UTC fields of `wallMs`).
 * A time that occurs twice (clocks set back) is the earlier instant; a time that does not
 * exist (clocks set forward) is read with the offset in force before the change.
 */
export function fromWallClock(wallMs: number, zone: string): number {
  return wallToInstant(wallMs, offsetFnFor(zone));
}

function wallToInstant(wallMs: number, offset: OffsetFn): number {
  const before = offset(wallMs - DAY_MS);
  const after = offset(wallMs + DAY_MS);
  // no change of offset within a day either side: the one offset holds
  if (before === after) return wallMs - before * 60000;
  const fits = (off: number): boolean => offset(wallMs - off * 60000) === off;
  const earlier = Math.max(before, after);
  const later = Math.min(before, after);
  if (fits(earlier)) return wallMs - earlier * 60000;
  if (fits(later)) return wallMs - later * 60000;
  return wallMs - before * 60000;
}

interface Fields {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  s: number;
  ms: number;
  pm: number;
  /** Offset in minutes when the text carries one. */
  off: number | undefined;
  epoch: number | undefined;
}

type Setter = (f: Fields, text: string) => void;

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const MONTH_NAMES = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAY_NAMES = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

const TOKENS: readonly [string, string, Setter][] = [
  ['YYYY', '(\\d{4})', (f, t) => (f.y = Number(t))],
  ['YY', '(\\d{2})', (f, t) => (f.y = 2000 + Number(t) - (Number(t) >= 70 ? 100 : 0))],
  ['MMMM', '([A-Za-z]+)', (f, t) => (f.mo = monthIndex(t))],
  ['MMM', '([A-Za-z]{3})', (f, t) => (f.mo = monthIndex(t))],
  ['MM', '(\\d{2})', (f, t) => (f.mo = Number(t))],
  ['M', '(\\d{1,2})', (f, t) => (f.mo = Number(t))],
  ['DD', '(\\d{2})', (f, t) => (f.d = Number(t))],
  ['D', '(\\d{1,2})', (f, t) => (f.d = Number(t))],
  ['HH', '(\\d{2})', (f, t) => (f.h = Number(t))],
  ['H', '(\\d{1,2})', (f, t) => (f.h = Number(t))],
  ['hh', '(\\d{2})', (f, t) => (f.h = Number(t) % 12)],
  ['h', '(\\d{1,2})', (f, t) => (f.h = Number(t) % 12)],
  ['mm', '(\\d{2})', (f, t) => (f.mi = Number(t))],
  ['ss', '(\\d{2})', (f, t) => (f.s = Number(t))],
  ['SSS', '(\\d{3})', (f, t) => (f.ms = Number(t))],
  ['A', '([AaPp][Mm])', (f, t) => (f.pm = t.toLowerCase() === 'pm' ? 12 : 0)],
  ['a', '([AaPp][Mm])', (f, t) => (f.pm = t.toLowerCase() === 'pm' ? 12 : 0)],
  ['Z', '(Z|[+-]\\d{2}:?\\d{2})', (f, t) => (f.off = fixedOffsetMin(t))],
  ['X', '(-?\\d+(?:\\.\\d+)?)', (f, t) => (f.epoch = Number(t) * 1000)],
  ['x', '(-?\\d+)', (f, t) => (f.epoch = Number(t))],
];

function monthIndex(t: string): number {
  const i = MONTHS.indexOf(t.slice(0, 3).toLowerCase());
  return i < 0 ? NaN : i + 1;
}

export interface DateParser {
  (text: string): number;
  readonly format: string;
}

const parsers = new Map<string, { re: RegExp; setters: Setter[] }>();

/** Compiles a format such as `DD/MM/YYYY HH:mm` (text in [brackets] is literal). */
function compileFormat(format: string): { re: RegExp; setters: Setter[] } {
  let hit = parsers.get(format);
  if (hit) return hit;
  let re = '^\\s*';
  const setters: Setter[] = [];
  let i = 0;
  while (i < format.length) {
    if (format[i] === '[') {
      const end = format.indexOf(']', i);
      if (end < 0) throw new IxError('IX_EXPR_ARGUMENTS', { expr: format, detail: 'unclosed [ in date format' });
      re += escapeRe(format.slice(i + 1, end));
      i = end + 1;
      continue;
    }
    const tok = TOKENS.find(([k]) => format.startsWith(k, i));
    if (tok) {
      re += tok[1];
      setters.push(tok[2]);
      i += tok[0].length;
    } else {
      re += escapeRe(format[i] as string);
      i++;
    }
  }
  re += '\\s*$';
  hit = { re: new RegExp(re), setters };
  parsers.set(format, hit);
  return hit;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

function invalid(text: unknown, format: string | undefined): IxError {
  const shown = typeof text === 'string' ? JSON.stringify(text.length > 40 ? `${text.slice(0, 37)}...` : text) : String(text);
  return new IxError('IX_EXPR_RUNTIME', { detail: `${shown} is not a date${format ? ` in format ${format}` : ''}` });
}

function daysInMonth(y: number, mo: number): number {
  if (mo !== 2) return mo === 4 || mo === 6 || mo === 9 || mo === 11 ? 30 : 31;
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
}

/** Date.UTC for every year: Date.UTC itself reads years 0–99 as 1900–1999. */
function wallUtc(y: number, mo: number, d: number, h: number, mi: number, s: number, ms: number): number {
  if (y >= 100) return Date.UTC(y, mo - 1, d, h, mi, s, ms);
  const t = new Date(Date.UTC(2000, 0, 1, h, mi, s, ms));
  t.setUTCFullYear(y, mo - 1, d);
  return t.getTime();
}

function build(f: Fields, zone: string, text: unknown, format: string | undefined, offset?: OffsetFn): number {
  if (f.epoch !== undefined) return f.epoch;
  const h = f.h + f.pm;
  if (!(f.mo >= 1 && f.mo <= 12 && f.d >= 1 && f.d <= 31 && h <= 23 && f.mi <= 59 && f.s <= 60)) throw invalid(text, format);
  if (f.d > daysInMonth(f.y, f.mo)) throw invalid(text, format);
  const wall = wallUtc(f.y, f.mo, f.d, h, f.mi, f.s, f.ms);
  if (f.off !== undefined) return wall - f.off * 60000;
  return zone === 'UTC' ? wall : wallToInstant(wall, offset ?? offsetFnFor(zone));
}

/**
 * Parses a date to epoch milliseconds. Without a format: ISO 8601 (a time without an offset
 * is wall-clock time in `zone`), epoch milliseconds as a number, or a Date.
 */
export function parseDate(value: unknown, format?: string, zone = 'UTC'): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalid(value, format);
    return format === 'X' ? value * 1000 : value;
  }
  if (value instanceof Date) {
    const t = value.getTime();
    if (Number.isNaN(t)) throw invalid(value, format);
    return t;
  }
  if (typeof value !== 'string') throw invalid(value, format);
  const f: Fields = { y: 1970, mo: 1, d: 1, h: 0, mi: 0, s: 0, ms: 0, pm: 0, off: undefined, epoch: undefined };
  if (format === undefined) {
    const m = ISO.exec(value);
    if (!m) throw invalid(value, format);
    f.y = Number(m[1]);
    f.mo = Number(m[2]);
    f.d = Number(m[3]);
    if (m[4] !== undefined) {
      f.h = Number(m[4]);
      f.mi = Number(m[5]);
      if (m[6] !== undefined) f.s = Number(m[6]);
      if (m[7] !== undefined) f.ms = Number(m[7].slice(0, 3).padEnd(3, '0'));
    }
    if (m[8] !== undefined) f.off = m[8] === 'Z' || m[8] === 'z' ? 0 : fixedOffsetMin(m[8].length === 3 ? `${m[8]}00` : m[8]);
    return build(f, zone, value, format);
  }
  const { re, setters } = compileFormat(format);
  const m = re.exec(value);
  if (!m) throw invalid(value, format);
  for (let i = 0; i < setters.length; i++) (setters[i] as Setter)(f, m[i + 1] as string);
  return build(f, zone, value, format);
}

/**
 * `parseDate` for one format and zone, prepared once: the same results; a text in the
 * format skips the format lookup and the generic field setters.
 */
export function dateParser(format: string | undefined, zone: string): (value: unknown) => number {
  if (format === undefined) return (value) => parseDate(value, undefined, zone);
  const { re, setters } = compileFormat(format);
  const offset = knownOffsetFn(zone);
  return (value) => {
    if (typeof value !== 'string') return parseDate(value, format, zone);
    const m = re.exec(value);
    if (!m) throw invalid(value, format);
    const f: Fields = { y: 1970, mo: 1, d: 1, h: 0, mi: 0, s: 0, ms: 0, pm: 0, off: undefined, epoch: undefined };
    for (let i = 0; i < setters.length; i++) (setters[i] as Setter)(f, m[i + 1] as string);
    return build(f, zone, value, format, offset);
  };
}

/** The zone's offset function, resolved once; undefined for an unknown zone (which then fails where it is used). */
function knownOffsetFn(zone: string): OffsetFn | undefined {
  try {
    return offsetFnFor(zone);
  } catch {
    return undefined;
  }
}

/** Checks a format at compile time (throws on an unclosed bracket). */
export function checkFormat(format: string): string {
  compileFormat(format);
  return format;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

const two = (n: number): string => (n < 10 ? `0${n}` : `${n}`);
/** First instant of year 0000 and of year 10000: between them ISO 8601 has four-digit years. */
const ISO_FROM = -62_167_219_200_000;
const ISO_TO = 253_402_300_800_000;

/**
 * `new Date(ms).toISOString()`, the same text in about a quarter of the time (the calendar
 * from the day number by integer arithmetic, after H. Hinnant's `civil_from_days`); outside
 * years 0000–9999, and for an invalid time, it is `toISOString` itself.
 */
export function isoString(time: number): string {
  // as Date does: fractions of a millisecond cut off toward zero
  const ms = Math.trunc(time);
  if (!(ms >= ISO_FROM && ms < ISO_TO)) return new Date(ms).toISOString();
  const days = Math.floor(ms / DAY_MS);
  let rest = ms - days * DAY_MS;
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const mo = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (mo <= 2 ? 1 : 0);
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const mi = Math.floor(rest / 60_000);
  rest -= mi * 60_000;
  const s = Math.floor(rest / 1000);
  const milli = rest - s * 1000;
  const yy = y >= 1000 ? `${y}` : `000${y}`.slice(-4);
  const mmm = milli >= 100 ? `${milli}` : milli >= 10 ? `0${milli}` : `00${milli}`;
  return `${yy}-${two(mo)}-${two(d)}T${two(h)}:${two(mi)}:${two(s)}.${mmm}Z`;
}

/** Formats epoch milliseconds with a format in a zone; without a format, ISO 8601 in UTC. */
export function formatDate(ms: number, format?: string, zone = 'UTC'): string {
  if (format === undefined && zone === 'UTC') return isoString(ms);
  const off = zone === 'UTC' ? 0 : zoneOffset(ms, zone);
  const d = new Date(ms + off * 60000);
  const offText = `${off < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  if (format === undefined) return `${d.toISOString().slice(0, 23)}${off === 0 ? 'Z' : offText}`;
  let out = '';
  let i = 0;
  while (i < format.length) {
    if (format[i] === '[') {
      const end = format.indexOf(']', i);
      out += format.slice(i + 1, end < 0 ? format.length : end);
      i = end < 0 ? format.length : end + 1;
      continue;
    }
    const rest = format.slice(i);
    const tok = ['YYYY', 'YY', 'MMMM', 'MMM', 'MM', 'M', 'DD', 'D', 'dddd', 'HH', 'H', 'hh', 'h', 'mm', 'ss', 'SSS', 'A', 'a', 'Z', 'X', 'x'].find((k) => rest.startsWith(k));
    if (!tok) {
      out += format[i];
      i++;
      continue;
    }
    const h = d.getUTCHours();
    switch (tok) {
      case 'YYYY': out += pad(d.getUTCFullYear(), 4); break;
      case 'YY': out += pad(d.getUTCFullYear() % 100); break;
      case 'MMMM': out += MONTH_NAMES[d.getUTCMonth()]; break;
      case 'MMM': out += (MONTH_NAMES[d.getUTCMonth()] as string).slice(0, 3); break;
      case 'MM': out += pad(d.getUTCMonth() + 1); break;
      case 'M': out += String(d.getUTCMonth() + 1); break;
      case 'DD': out += pad(d.getUTCDate()); break;
      case 'D': out += String(d.getUTCDate()); break;
      case 'dddd': out += DAY_NAMES[d.getUTCDay()]; break;
      case 'HH': out += pad(h); break;
      case 'H': out += String(h); break;
      case 'hh': out += pad(h % 12 === 0 ? 12 : h % 12); break;
      case 'h': out += String(h % 12 === 0 ? 12 : h % 12); break;
      case 'mm': out += pad(d.getUTCMinutes()); break;
      case 'ss': out += pad(d.getUTCSeconds()); break;
      case 'SSS': out += pad(d.getUTCMilliseconds(), 3); break;
      case 'A': out += h < 12 ? 'AM' : 'PM'; break;
      case 'a': out += h < 12 ? 'am' : 'pm'; break;
      case 'Z': out += off === 0 ? 'Z' : offText; break;
      case 'X': out += String(Math.floor(ms / 1000)); break;
      case 'x': out += String(ms); break;
    }
    i += tok.length;
  }
  return out;
}
