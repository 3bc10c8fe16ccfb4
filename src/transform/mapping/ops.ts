import { IxError, permanent } from '../../core/errors.js';
import { FORBIDDEN_KEYS } from '../expression/ast.js';
import { dateParser, formatDate, isoString, parseDate } from '../expression/date.js';
import { describe, runtimeError, str } from '../expression/runtime.js';
import { FUNCTIONS } from '../expression/runtime.js';
import type { Path, RowPlan } from './plan.js';

/** The helpers of the compiled mapping (the reference interpreter has its own, written apart). */

const toNumber = FUNCTIONS['number']?.impl as (v: unknown) => number | null;
const toBoolean = FUNCTIONS['boolean']?.impl as (v: unknown) => boolean | null;

export function convert(type: RowPlan['type'], v: unknown, format: string | undefined, zone: string): unknown {
  if (v === null || v === undefined) return v;
  switch (type) {
    case 'any':
      return v;
    case 'string':
      return str(v);
    case 'number':
      return toNumber(v);
    case 'integer': {
      const n = toNumber(v) as number;
      if (!Number.isInteger(n)) throw runtimeError(`${describe(v)} is not an integer`);
      return n;
    }
    case 'boolean':
      return toBoolean(v);
    case 'date':
      return v === '' ? null : formatDate(parseDate(v, format, zone));
  }
}

/**
 * `convert` specialised for one row's type, format and zone, resolved once at compile time:
 * the same results, without the per-value dispatch.
 */
export function converter(type: RowPlan['type'], format: string | undefined, zone: string): (v: unknown) => unknown {
  switch (type) {
    case 'string':
      return (v) => (v === null || v === undefined ? v : str(v));
    case 'number':
      return (v) => (v === null || v === undefined ? v : typeof v === 'number' ? v : toNumber(v));
    case 'date': {
      const parse = dateParser(format, zone);
      return (v) => (v === null || v === undefined ? v : v === '' ? null : isoString(parse(v)));
    }
    default:
      return (v) => convert(type, v, format, zone);
  }
}

export function lookupIn(table: ReadonlyMap<string, unknown>, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  const hit = table.get(str(v));
  return hit === undefined ? null : hit;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Writes `v` at `path` in `o`, creating objects and arrays; never a forbidden key. An object
 * on the way is copied before it is written into: it may be the source's own (a row wrote
 * `c` as it was, a later row writes `c.extra`), and the source is never changed.
 */
export function setIn(o: Record<string, unknown>, path: Path, v: unknown): void {
  let cur: Record<string, unknown> | unknown[] = o;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i] as string | number;
    const nextIsIndex = typeof path[i + 1] === 'number';
    let child = (cur as Record<string | number, unknown>)[seg];
    if (nextIsIndex ? !Array.isArray(child) : !isPlainObject(child)) child = nextIsIndex ? [] : {};
    else child = Array.isArray(child) ? [...child] : { ...(child as Record<string, unknown>) };
    (cur as Record<string | number, unknown>)[seg] = child;
    cur = child as Record<string, unknown> | unknown[];
  }
  (cur as Record<string | number, unknown>)[path[path.length - 1] as string | number] = v;
}

/** Flattens a plain object's leaves into `o` as `prefix<sep>a<sep>b` keys (arrays are leaves). */
export function flattenInto(o: Record<string, unknown>, prefix: string, sep: string, v: unknown): void {
  if (!isPlainObject(v)) {
    if (prefix !== '') o[prefix] = v;
    return;
  }
  for (const k of Object.keys(v)) {
    if (FORBIDDEN_KEYS.has(k)) continue;
    const key = prefix === '' ? k : `${prefix}${sep}${k}`;
    flattenInto(o, key, sep, v[k]);
  }
}

/** The unmapped fields kept: a shallow copy without the fields rows read or `drop` names. */
export function keepCopy(r: unknown, notCopied: ReadonlySet<string>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (!isPlainObject(r)) return o;
  for (const k of Object.keys(r)) if (!notCopied.has(k) && !FORBIDDEN_KEYS.has(k)) o[k] = r[k];
  return o;
}

function maskReason(reason: string): string {
  return reason
    .replace(/(string )"(?:[^"\\]|\\.)*"/g, '$1"***"')
    .replace(/(number |boolean )[^\s,;)]+/g, '$1***')
    .replace(/"(?:[^"\\]|\\.)*" is not a date/g, '"***" is not a date');
}

/** A conversion or expression failure of one field: permanent, with the field and the reason. */
export function fieldError(mapping: string, row: RowPlan, err: unknown): IxError {
  if (err instanceof IxError && err.code === 'IX_PERMANENT' && err.message.startsWith('mapping ')) return err;
  let reason = err instanceof IxError ? String(err.params['detail'] ?? err.message) : err instanceof Error ? err.message : String(err);
  if (row.sensitive) reason = `${maskReason(reason)} (value masked: sensitive field)`;
  return permanent(`mapping "${mapping}" field ${row.label}: ${reason}`, row.sensitive ? undefined : err);
}

export function missingError(mapping: string, row: RowPlan): IxError {
  return permanent(`mapping "${mapping}" field ${row.label}: the source field is missing`);
}

export function eachError(v: unknown): IxError {
  return runtimeError(`each expects an array, got ${describe(v)}`);
}
