import { createHash } from 'node:crypto';
import { IxError } from '../../core/errors.js';
import { FORBIDDEN_KEYS } from './ast.js';
import { checkFormat, checkZone, formatDate, parseDate } from './date.js';

/**
 * The run-time side of the expression language: safe member access, operators, and the
 * built-in functions. Nothing here reaches a prototype, a constructor or a global.
 */

/** Lambda calls and array iterations allowed in one evaluation. */
export const ITERATION_BUDGET = 1_000_000;
/** Longest string a function may build (pad, join, repeat-like growth). */
export const MAX_STRING = 1_000_000;
/** Longest input a regular expression runs on. */
export const MAX_REGEX_INPUT = 100_000;

/** Wall-clock time one evaluation may take by default (a mapping: one record), in milliseconds. */
export const DEFAULT_DEADLINE_MS = 1000;
/** Iterations between two looks at the clock. */
const CLOCK_EVERY = 1024;

export interface EvaluationLimits {
  /** Wall-clock milliseconds one evaluation may take. */
  readonly deadlineMs: number;
  /** The clock the deadline is read from (milliseconds; monotonic by default). */
  readonly clock: () => number;
}

/** The deadline from IX_EXPR_DEADLINE_MS when set (milliseconds), else the default. */
function deadlineFromEnv(): number {
  const raw = process.env['IX_EXPR_DEADLINE_MS'];
  if (raw === undefined || raw === '') return DEFAULT_DEADLINE_MS;
  const ms = Number(raw);
  if (!(Number.isFinite(ms) && ms > 0)) throw new RangeError(`IX_EXPR_DEADLINE_MS must be a positive number of milliseconds, got ${JSON.stringify(raw)}`);
  return ms;
}

let limits: EvaluationLimits = { deadlineMs: deadlineFromEnv(), clock: () => performance.now() };

/**
 * Sets the wall-clock deadline of every evaluation (and, for tests, its clock); returns the
 * limits in force before, to restore them.
 */
export function configureEvaluation(change: Partial<EvaluationLimits>): EvaluationLimits {
  const before = limits;
  if (change.deadlineMs !== undefined && !(Number.isFinite(change.deadlineMs) && change.deadlineMs > 0)) {
    throw new RangeError(`the expression deadline must be a positive number of milliseconds, got ${String(change.deadlineMs)}`);
  }
  limits = { ...limits, ...change };
  return before;
}

export const budget = { left: ITERATION_BUDGET, tick: 0, deadline: Infinity };

/** Starts one evaluation: a full iteration budget and a deadline from now. */
export function resetBudget(): void {
  budget.left = ITERATION_BUDGET;
  budget.tick = CLOCK_EVERY;
  budget.deadline = limits.clock() + limits.deadlineMs;
}

function spend(n: number): void {
  budget.left -= n;
  if (budget.left < 0) {
    throw new IxError('IX_EXPR_RUNTIME', { detail: `more than ${ITERATION_BUDGET} iterations in one evaluation` });
  }
  budget.tick -= n;
  if (budget.tick <= 0) {
    budget.tick = CLOCK_EVERY;
    if (limits.clock() > budget.deadline) {
      throw new IxError('IX_EXPR_RUNTIME', { detail: `evaluation took longer than its deadline of ${limits.deadlineMs} ms` });
    }
  }
}

export function runtimeError(detail: string): IxError {
  return new IxError('IX_EXPR_RUNTIME', { detail });
}

/** `o.k` for a field name checked at compile time: own data only, never a function. */
export function get(o: unknown, k: string): unknown {
  if (o === null || o === undefined) return undefined;
  if (typeof o === 'object') {
    const v = (o as Record<string, unknown>)[k];
    return typeof v === 'function' ? undefined : v;
  }
  if (typeof o === 'string' && k === 'length') return o.length;
  return undefined;
}

/** `o[i]` with a computed index: numbers index arrays and strings (negative from the end). */
export function index(o: unknown, i: unknown): unknown {
  if (o === null || o === undefined) return undefined;
  if (typeof i === 'number') {
    if (!Number.isInteger(i)) return undefined;
    if (Array.isArray(o) || typeof o === 'string') return o[i < 0 ? o.length + i : i];
    return get(o, String(i));
  }
  if (typeof i === 'string') {
    if (FORBIDDEN_KEYS.has(i)) throw runtimeError(`access to "${i}" is not allowed`);
    return get(o, i);
  }
  return undefined;
}

const isNil = (v: unknown): v is null | undefined => v === null || v === undefined;

function num(v: unknown, op: string): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    if (!Number.isNaN(n)) return n;
  }
  throw runtimeError(`cannot apply "${op}" to ${describe(v)}`);
}

export function describe(v: unknown): string {
  if (v === undefined) return 'a missing value';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 30 ? `${v.slice(0, 27)}...` : v)}`;
  return `${typeof v} ${String(v)}`;
}

export function add(a: unknown, b: unknown): unknown {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (typeof a === 'string' || typeof b === 'string') return concat2(a, b);
  if (isNil(a) || isNil(b)) return null;
  return num(a, '+') + num(b, '+');
}

function concat2(a: unknown, b: unknown): string {
  const s = str(a) + str(b);
  if (s.length > MAX_STRING) throw runtimeError(`string longer than ${MAX_STRING} characters`);
  return s;
}

export function arith(op: '-' | '*' | '/' | '%', a: unknown, b: unknown): unknown {
  if (isNil(a) || isNil(b)) return null;
  const x = num(a, op);
  const y = num(b, op);
  switch (op) {
    case '-':
      return x - y;
    case '*':
      return x * y;
    case '/':
      return y === 0 ? null : x / y;
    case '%':
      return y === 0 ? null : x % y;
  }
}

export function neg(a: unknown): unknown {
  return isNil(a) ? null : -num(a, '-');
}

/** Strings of values: null and missing are empty, objects are JSON. */
export function str(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v instanceof Date) return v.toISOString();
  return JSON.stringify(v) ?? '';
}

export function eq(a: unknown, b: unknown): boolean {
  return a === b || (isNil(a) && isNil(b));
}

/** `compare` for one operator: small and monomorphic, so generated code inlines them. */
export const lt = (a: unknown, b: unknown): boolean => (typeof a === 'number' && typeof b === 'number' ? a < b : compare('<', a, b));
export const le = (a: unknown, b: unknown): boolean => (typeof a === 'number' && typeof b === 'number' ? a <= b : compare('<=', a, b));
export const gt = (a: unknown, b: unknown): boolean => (typeof a === 'number' && typeof b === 'number' ? a > b : compare('>', a, b));
export const ge = (a: unknown, b: unknown): boolean => (typeof a === 'number' && typeof b === 'number' ? a >= b : compare('>=', a, b));

/** A string built by `concat` or `&`, refused beyond MAX_STRING. */
export function cat(s: string): string {
  if (s.length > MAX_STRING) throw runtimeError(`string longer than ${MAX_STRING} characters`);
  return s;
}

export function compare(op: '<' | '<=' | '>' | '>=', a: unknown, b: unknown): boolean {
  if (!((typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string'))) return false;
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
  }
}

export function member(a: unknown, b: unknown): boolean {
  if (Array.isArray(b)) return b.some((x) => eq(x, a));
  if (typeof b === 'string') return typeof a === 'string' && b.includes(a);
  if (b !== null && typeof b === 'object' && typeof a === 'string') return Object.hasOwn(b, a) && !FORBIDDEN_KEYS.has(a);
  return false;
}

export function truthy(v: unknown): boolean {
  return Boolean(v);
}

/** A plain object from checked keys. */
export function object(keys: readonly string[], values: readonly unknown[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = 0; i < keys.length; i++) {
    const v = values[i];
    if (v !== undefined) o[keys[i] as string] = v;
  }
  return o;
}

// ---- built-in functions ----

export type Lambda = (item: unknown, index: number) => unknown;

/** What compile-time preparation of a literal argument needs. */
export interface CompileEnv {
  /** Lookup tables by name (a mapping's `lookups`). */
  readonly lookups?: ReadonlyMap<string, ReadonlyMap<string, unknown>>;
  /** The clock now() reads; Date.now by default. */
  readonly now?: () => number;
}

export interface FnDef {
  readonly min: number;
  readonly max: number;
  /** Argument positions that must be lambdas. */
  readonly lambdas?: readonly number[];
  /** Argument positions that must be literals, prepared once at compile time. */
  readonly statics?: Readonly<Record<number, (literal: unknown, env: CompileEnv) => unknown>>;
  /** A summary line for the docs. */
  readonly doc: string;
  readonly impl: (...args: never[]) => unknown;
}

const MAX_REGEX_SOURCE = 500;

/** Refuses patterns prone to catastrophic backtracking: a quantified group that itself repeats. */
export function safeRegex(pattern: unknown, flags: unknown = ''): RegExp {
  if (typeof pattern !== 'string') throw runtimeError('a regular expression is a string literal');
  if (pattern.length > MAX_REGEX_SOURCE) throw runtimeError(`regular expression longer than ${MAX_REGEX_SOURCE} characters`);
  if (/\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*(?:[+*]|\{\d+,\d*\})/.test(pattern) || /\\\d/.test(pattern)) {
    throw runtimeError(`regular expression ${JSON.stringify(pattern)} repeats a repeated group or uses a back-reference (may backtrack without bound)`);
  }
  const f = typeof flags === 'string' ? flags : '';
  if (!/^[gimsu]*$/.test(f)) throw runtimeError(`unknown regular expression flags "${f}"`);
  try {
    return new RegExp(pattern, f);
  } catch (err) {
    throw runtimeError(`invalid regular expression ${JSON.stringify(pattern)}: ${(err as Error).message}`);
  }
}

function regexInput(s: unknown): string | undefined {
  if (isNil(s)) return undefined;
  const t = str(s);
  if (t.length > MAX_REGEX_INPUT) throw runtimeError(`regular expression input longer than ${MAX_REGEX_INPUT} characters`);
  return t;
}

function arr(v: unknown, fn: string): unknown[] {
  if (isNil(v)) return [];
  if (Array.isArray(v)) return v;
  throw runtimeError(`${fn}() expects an array, got ${describe(v)}`);
}

function iterate(a: unknown[]): void {
  spend(a.length);
}

function numbers(a: unknown[], f: Lambda | undefined, fn: string): number[] {
  iterate(a);
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const v = f ? f(a[i], i) : a[i];
    if (isNil(v)) continue;
    out.push(num(v, fn));
  }
  return out;
}

function toNumber(v: unknown): number | null {
  if (isNil(v)) return null;
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') {
    // Number() skips the same surrounding white space as trim(), but reads a blank text as 0
    const n = Number(v);
    if (Number.isNaN(n) || (n === 0 && v.trim() === '')) throw runtimeError(`cannot convert ${describe(v)} to a number`);
    return n;
  }
  throw runtimeError(`cannot convert ${describe(v)} to a number`);
}

function toBoolean(v: unknown): boolean | null {
  if (isNil(v)) return null;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') {
    const t = v.trim().toLowerCase();
    if (['true', 'yes', 'y', '1', 'on'].includes(t)) return true;
    if (['false', 'no', 'n', '0', 'off', ''].includes(t)) return false;
  }
  throw runtimeError(`cannot convert ${describe(v)} to a boolean`);
}

function padTo(n: unknown): number {
  const w = typeof n === 'number' ? n : Number(n);
  if (!Number.isInteger(w) || w < 0 || w > 10_000) throw runtimeError('pad width must be an integer from 0 to 10000');
  return w;
}

function hash(alg: string) {
  return (v: unknown): string | null => (isNil(v) ? null : createHash(alg).update(str(v)).digest('hex'));
}

function mask(v: unknown, keep: unknown = 4, ch: unknown = '*'): string | null {
  if (isNil(v)) return null;
  const s = str(v);
  const k = Math.max(0, Math.min(s.length, typeof keep === 'number' ? Math.floor(keep) : 4));
  const c = typeof ch === 'string' && ch.length > 0 ? (ch[0] as string) : '*';
  return c.repeat(s.length - k) + s.slice(s.length - k);
}

function maskEmail(v: unknown): string | null {
  if (isNil(v)) return null;
  const s = str(v);
  const at = s.lastIndexOf('@');
  if (at <= 0) return mask(s, 0);
  return `${s[0]}${'*'.repeat(Math.max(1, at - 1))}${s.slice(at)}`;
}

function title(v: unknown): string | null {
  if (isNil(v)) return null;
  return str(v).toLowerCase().replace(/(^|[\s\-_'])(\p{L})/gu, (_m, a: string, b: string) => a + b.toUpperCase());
}

function round(v: unknown, digits: unknown = 0): number | null {
  const n = toNumber(v);
  if (n === null) return null;
  const d = typeof digits === 'number' ? Math.max(-15, Math.min(15, Math.floor(digits))) : 0;
  const f = 10 ** d;
  return Math.round((n + Number.EPSILON * Math.sign(n)) * f) / f;
}

function plainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const s1 = (f: (s: string) => string) => (v: unknown): string | null => (isNil(v) ? null : f(str(v)));

const definitions: Record<string, FnDef> = {
  // strings
  trim: { min: 1, max: 1, doc: 'Removes surrounding white space.', impl: (v: unknown) => (typeof v === 'string' ? v.trim() : isNil(v) ? null : str(v).trim()) },
  ltrim: { min: 1, max: 1, doc: 'Removes leading white space.', impl: s1((s) => s.trimStart()) },
  rtrim: { min: 1, max: 1, doc: 'Removes trailing white space.', impl: s1((s) => s.trimEnd()) },
  upper: { min: 1, max: 1, doc: 'Upper case.', impl: (v: unknown) => (typeof v === 'string' ? v.toUpperCase() : isNil(v) ? null : str(v).toUpperCase()) },
  lower: { min: 1, max: 1, doc: 'Lower case.', impl: (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : isNil(v) ? null : str(v).toLowerCase()) },
  title: { min: 1, max: 1, doc: 'Title Case Of Each Word.', impl: title },
  capitalize: { min: 1, max: 1, doc: 'First letter upper case.', impl: s1((s) => s.charAt(0).toUpperCase() + s.slice(1)) },
  substring: {
    min: 2, max: 3, doc: 'substring(s, start, length?): characters from start (negative: from the end).',
    impl: (v: unknown, start: unknown, len?: unknown) => {
      if (isNil(v)) return null;
      const s = str(v);
      const a = Number(start) < 0 ? Math.max(0, s.length + Number(start)) : Number(start);
      return len === undefined ? s.slice(a) : s.slice(a, a + Math.max(0, Number(len)));
    },
  },
  padStart: { min: 2, max: 3, doc: 'padStart(s, width, char=" ").', impl: (v: unknown, w: unknown, c: unknown = ' ') => (isNil(v) ? null : str(v).padStart(padTo(w), str(c) || ' ')) },
  padEnd: { min: 2, max: 3, doc: 'padEnd(s, width, char=" ").', impl: (v: unknown, w: unknown, c: unknown = ' ') => (isNil(v) ? null : str(v).padEnd(padTo(w), str(c) || ' ')) },
  pad: { min: 2, max: 3, doc: 'pad(s, width, char="0"): pads on the left (zero-fill).', impl: (v: unknown, w: unknown, c: unknown = '0') => (isNil(v) ? null : str(v).padStart(padTo(w), str(c) || '0')) },
  concat: {
    min: 1, max: 64, doc: 'concat(a, b, …): joins values as strings (null as empty).',
    impl: (...vs: unknown[]) => {
      let s = '';
      for (const v of vs) s += str(v);
      if (s.length > MAX_STRING) throw runtimeError(`string longer than ${MAX_STRING} characters`);
      return s;
    },
  },
  join: {
    min: 1, max: 2, doc: 'join(array, separator=","): skips null and missing.',
    impl: (a: unknown, sep: unknown = ',') => {
      const xs = arr(a, 'join');
      iterate(xs);
      const s = xs.filter((x) => !isNil(x)).map(str).join(str(sep));
      if (s.length > MAX_STRING) throw runtimeError(`string longer than ${MAX_STRING} characters`);
      return s;
    },
  },
  split: { min: 2, max: 2, doc: 'split(s, separator): an array of strings.', impl: (v: unknown, sep: unknown) => (isNil(v) ? [] : str(v).split(str(sep))) },
  replace: { min: 3, max: 3, doc: 'replace(s, find, with): replaces every occurrence of a literal string.', impl: (v: unknown, a: unknown, b: unknown) => (isNil(v) ? null : str(v).split(str(a)).join(str(b))) },
  contains: { min: 2, max: 2, doc: 'contains(s, part).', impl: (v: unknown, a: unknown) => !isNil(v) && str(v).includes(str(a)) },
  startsWith: { min: 2, max: 2, doc: 'startsWith(s, prefix).', impl: (v: unknown, a: unknown) => !isNil(v) && str(v).startsWith(str(a)) },
  endsWith: { min: 2, max: 2, doc: 'endsWith(s, suffix).', impl: (v: unknown, a: unknown) => !isNil(v) && str(v).endsWith(str(a)) },
  length: { min: 1, max: 1, doc: 'Length of a string or an array (null: 0).', impl: (v: unknown) => (isNil(v) ? 0 : Array.isArray(v) ? v.length : str(v).length) },
  // regular expressions (the pattern is a string literal, checked and compiled once)
  test: {
    min: 2, max: 3, doc: 'test(s, "regex", flags?): whether the pattern matches.',
    statics: { 1: (p) => p, 2: (f) => f },
    impl: (v: unknown, p: unknown, f?: unknown) => {
      const s = regexInput(v);
      return s !== undefined && cachedRegex(p, f).test(s);
    },
  },
  extract: {
    min: 2, max: 4, doc: 'extract(s, "regex", group=0 or 1 when the pattern has a group, flags?): the matched text or null.',
    statics: { 1: (p) => p, 3: (f) => f },
    impl: (v: unknown, p: unknown, g?: unknown, f?: unknown) => {
      const s = regexInput(v);
      if (s === undefined) return null;
      const m = cachedRegex(p, f).exec(s);
      if (!m) return null;
      const group = typeof g === 'number' ? g : m.length > 1 ? 1 : 0;
      return m[group] ?? null;
    },
  },
  regexReplace: {
    min: 3, max: 4, doc: 'regexReplace(s, "regex", with, flags="g"): $1… in `with` name groups.',
    statics: { 1: (p) => p, 3: (f) => f },
    impl: (v: unknown, p: unknown, w: unknown, f: unknown = 'g') => {
      const s = regexInput(v);
      if (s === undefined) return null;
      const out = s.replace(cachedRegex(p, f), str(w));
      if (out.length > MAX_STRING) throw runtimeError(`string longer than ${MAX_STRING} characters`);
      return out;
    },
  },
  // numbers and conversion
  number: { min: 1, max: 1, doc: 'Converts to a number (null stays null; "abc" is an error).', impl: toNumber },
  integer: {
    min: 1, max: 1, doc: 'Converts to an integer (truncates).',
    impl: (v: unknown) => {
      const n = toNumber(v);
      return n === null ? null : Math.trunc(n);
    },
  },
  string: { min: 1, max: 1, doc: 'Converts to a string (objects as JSON; null stays null).', impl: (v: unknown) => (isNil(v) ? null : str(v)) },
  boolean: { min: 1, max: 1, doc: 'Converts true/false/yes/no/1/0/on/off to a boolean.', impl: toBoolean },
  round: { min: 1, max: 2, doc: 'round(n, digits=0): half away from zero.', impl: round },
  floor: { min: 1, max: 1, doc: 'Rounds down.', impl: (v: unknown) => { const n = toNumber(v); return n === null ? null : Math.floor(n); } },
  ceil: { min: 1, max: 1, doc: 'Rounds up.', impl: (v: unknown) => { const n = toNumber(v); return n === null ? null : Math.ceil(n); } },
  abs: { min: 1, max: 1, doc: 'Absolute value.', impl: (v: unknown) => { const n = toNumber(v); return n === null ? null : Math.abs(n); } },
  min: { min: 1, max: 64, doc: 'min(a, b, …) or min(array): the smallest number.', impl: (...vs: unknown[]) => extreme(vs, 'min') },
  max: { min: 1, max: 64, doc: 'max(a, b, …) or max(array): the largest number.', impl: (...vs: unknown[]) => extreme(vs, 'max') },
  // arrays
  count: {
    min: 1, max: 2, lambdas: [1], doc: 'count(array, x => test?): elements (that pass the test).',
    impl: (a: unknown, f?: Lambda) => {
      const xs = arr(a, 'count');
      if (!f) return xs.length;
      iterate(xs);
      let n = 0;
      for (let i = 0; i < xs.length; i++) if (f(xs[i], i)) n++;
      return n;
    },
  },
  sum: {
    min: 1, max: 2, lambdas: [1], doc: 'sum(array, x => value?): the sum (0 for none).',
    impl: (a: unknown, f?: Lambda) => {
      const xs = arr(a, 'sum');
      iterate(xs);
      let total = 0;
      for (let i = 0; i < xs.length; i++) {
        const v = f ? f(xs[i], i) : xs[i];
        if (typeof v === 'number') total += v;
        else if (!isNil(v)) total += num(v, 'sum');
      }
      return total;
    },
  },
  avg: {
    min: 1, max: 2, lambdas: [1], doc: 'avg(array, x => value?): the mean (null for none).',
    impl: (a: unknown, f?: Lambda) => {
      const ns = numbers(arr(a, 'avg'), f, 'avg');
      return ns.length === 0 ? null : ns.reduce((s, x) => s + x, 0) / ns.length;
    },
  },
  map: {
    min: 2, max: 2, lambdas: [1], doc: 'map(array, x => value): a new array.',
    impl: (a: unknown, f: Lambda) => {
      const xs = arr(a, 'map');
      iterate(xs);
      return xs.map((x, i) => f(x, i));
    },
  },
  filter: {
    min: 2, max: 2, lambdas: [1], doc: 'filter(array, x => test): the elements that pass.',
    impl: (a: unknown, f: Lambda) => {
      const xs = arr(a, 'filter');
      iterate(xs);
      return xs.filter((x, i) => f(x, i));
    },
  },
  find: {
    min: 2, max: 2, lambdas: [1], doc: 'find(array, x => test): the first element that passes, or null.',
    impl: (a: unknown, f: Lambda) => {
      const xs = arr(a, 'find');
      iterate(xs);
      return xs.find((x, i) => f(x, i)) ?? null;
    },
  },
  some: { min: 2, max: 2, lambdas: [1], doc: 'some(array, x => test).', impl: (a: unknown, f: Lambda) => { const xs = arr(a, 'some'); iterate(xs); return xs.some((x, i) => Boolean(f(x, i))); } },
  every: { min: 2, max: 2, lambdas: [1], doc: 'every(array, x => test).', impl: (a: unknown, f: Lambda) => { const xs = arr(a, 'every'); iterate(xs); return xs.every((x, i) => Boolean(f(x, i))); } },
  first: { min: 1, max: 1, doc: 'The first element, or null.', impl: (a: unknown) => arr(a, 'first')[0] ?? null },
  last: { min: 1, max: 1, doc: 'The last element, or null.', impl: (a: unknown) => { const xs = arr(a, 'last'); return xs[xs.length - 1] ?? null; } },
  distinct: {
    min: 1, max: 1, doc: 'Removes repeated elements (by value for strings, numbers, booleans).',
    impl: (a: unknown) => {
      const xs = arr(a, 'distinct');
      iterate(xs);
      return [...new Set(xs)];
    },
  },
  sort: {
    min: 1, max: 2, lambdas: [1], doc: 'sort(array, x => key?): ascending, numbers before strings.',
    impl: (a: unknown, f?: Lambda) => {
      const xs = arr(a, 'sort');
      iterate(xs);
      spend(Math.ceil(xs.length * Math.log2(xs.length + 1)));
      const keyed = xs.map((x, i) => [f ? f(x, i) : x, x] as const);
      keyed.sort(([p], [q]) => order(p, q));
      return keyed.map(([, x]) => x);
    },
  },
  reverse: { min: 1, max: 1, doc: 'The array reversed.', impl: (a: unknown) => [...arr(a, 'reverse')].reverse() },
  flatten: { min: 1, max: 1, doc: 'Flattens one level of nested arrays.', impl: (a: unknown) => { const xs = arr(a, 'flatten'); iterate(xs); return xs.flat(1); } },
  keys: { min: 1, max: 1, doc: 'The keys of an object.', impl: (o: unknown) => (plainObject(o) ? Object.keys(o) : []) },
  values: { min: 1, max: 1, doc: 'The values of an object.', impl: (o: unknown) => (plainObject(o) ? Object.values(o) : []) },
  merge: {
    min: 1, max: 16, doc: 'merge(a, b, …): a new object with the keys of each (later wins).',
    impl: (...os: unknown[]) => {
      const out: Record<string, unknown> = {};
      for (const o of os) if (plainObject(o)) for (const k of Object.keys(o)) if (!FORBIDDEN_KEYS.has(k)) out[k] = o[k];
      return out;
    },
  },
  // values
  exists: { min: 1, max: 1, doc: 'Whether the value is present (not missing).', impl: (v: unknown) => v !== undefined },
  empty: { min: 1, max: 1, doc: 'Whether the value is null, missing, "", [] or {}.', impl: (v: unknown) => isNil(v) || v === '' || (Array.isArray(v) && v.length === 0) || (plainObject(v) && Object.keys(v).length === 0) },
  coalesce: { min: 1, max: 32, doc: 'The first argument that is neither null nor missing.', impl: (...vs: unknown[]) => vs.find((v) => !isNil(v)) ?? null },
  type: { min: 1, max: 1, doc: 'null, string, number, boolean, array or object.', impl: (v: unknown) => (isNil(v) ? 'null' : Array.isArray(v) ? 'array' : typeof v) },
  json: { min: 1, max: 1, doc: 'The value as JSON text.', impl: (v: unknown) => JSON.stringify(v ?? null) },
  parseJson: {
    min: 1, max: 1, doc: 'Parses JSON text (null stays null).',
    impl: (v: unknown) => {
      if (isNil(v)) return null;
      try {
        return JSON.parse(str(v), (k, x: unknown) => (FORBIDDEN_KEYS.has(k) ? undefined : x));
      } catch (err) {
        throw runtimeError(`invalid JSON: ${(err as Error).message}`);
      }
    },
  },
  // lookup tables (the table name is a string literal, resolved once)
  lookup: {
    min: 2, max: 3, doc: 'lookup(key, "table", default?): the value for key in a lookup table.',
    statics: {
      1: (name, env) => {
        const t = env.lookups?.get(String(name));
        if (!t) throw runtimeError(`unknown lookup table "${String(name)}"${env.lookups && env.lookups.size > 0 ? ` (known: ${[...env.lookups.keys()].join(', ')})` : ''}`);
        return t;
      },
    },
    impl: (k: unknown, t: ReadonlyMap<string, unknown>, d: unknown = null) => {
      if (isNil(k)) return d;
      const v = t.get(str(k));
      return v === undefined ? d : v;
    },
  },
  // dates
  toDate: {
    min: 1, max: 3, doc: 'toDate(v, format?, zone="UTC"): parses a date to ISO 8601 in UTC.',
    statics: { 1: (f) => (f === null ? undefined : checkFormat(str(f))), 2: (z) => checkZone(str(z)) },
    impl: (v: unknown, f?: string, z?: string) => (isNil(v) || v === '' ? null : formatDate(parseDate(v, f, z ?? 'UTC'))),
  },
  toMillis: {
    min: 1, max: 3, doc: 'toMillis(v, format?, zone="UTC"): a date as epoch milliseconds.',
    statics: { 1: (f) => (f === null ? undefined : checkFormat(str(f))), 2: (z) => checkZone(str(z)) },
    impl: (v: unknown, f?: string, z?: string) => (isNil(v) || v === '' ? null : parseDate(v, f, z ?? 'UTC')),
  },
  formatDate: {
    min: 2, max: 3, doc: 'formatDate(v, format, zone="UTC"): formats a date (ISO text or epoch ms).',
    statics: { 1: (f) => checkFormat(str(f)), 2: (z) => checkZone(str(z)) },
    impl: (v: unknown, f: string, z?: string) => (isNil(v) || v === '' ? null : formatDate(parseDate(v), f, z ?? 'UTC')),
  },
  now: { min: 0, max: 0, doc: 'The current time as ISO 8601 (the engine clock).', impl: (clock: () => number) => new Date(clock()).toISOString() },
  // personal data
  sha256: { min: 1, max: 1, doc: 'SHA-256 of the text, hex.', impl: hash('sha256') },
  sha1: { min: 1, max: 1, doc: 'SHA-1 of the text, hex.', impl: hash('sha1') },
  md5: { min: 1, max: 1, doc: 'MD5 of the text, hex (not for security).', impl: hash('md5') },
  mask: { min: 1, max: 3, doc: 'mask(s, keepLast=4, char="*"): ****1234.', impl: mask },
  maskEmail: { min: 1, max: 1, doc: 'maskEmail(s): j***@example.com.', impl: maskEmail },
};

/** The functions expressions may call, by name. A null-prototype table: no inherited names. */
export const FUNCTIONS: Readonly<Record<string, FnDef>> = Object.freeze(Object.assign(Object.create(null) as Record<string, FnDef>, definitions));

const regexCache = new Map<string, RegExp>();

function cachedRegex(p: unknown, f: unknown): RegExp {
  const key = `${String(f ?? '')}/${String(p)}`;
  let re = regexCache.get(key);
  if (!re) {
    re = safeRegex(p, f ?? '');
    if (regexCache.size > 1000) regexCache.clear();
    regexCache.set(key, re);
  }
  re.lastIndex = 0;
  return re;
}

function extreme(vs: unknown[], which: 'min' | 'max'): number | null {
  const list = vs.length === 1 && Array.isArray(vs[0]) ? (vs[0] as unknown[]) : vs;
  const ns = numbers(list, undefined, which);
  if (ns.length === 0) return null;
  let best = ns[0] as number;
  for (const n of ns) if (which === 'min' ? n < best : n > best) best = n;
  return best;
}

function order(a: unknown, b: unknown): number {
  const rank = (v: unknown): number => (isNil(v) ? 3 : typeof v === 'number' ? 0 : typeof v === 'string' ? 1 : 2);
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (ra === 0) return (a as number) - (b as number);
  if (ra === 1) return (a as string) < (b as string) ? -1 : (a as string) > (b as string) ? 1 : 0;
  return 0;
}

/** Checks the regex statics of a call at compile time (so a bad pattern fails the spec). */
export function prepareStatic(fn: string, index: number, literal: unknown, env: CompileEnv): unknown {
  const def = FUNCTIONS[fn] as FnDef;
  const prep = def.statics?.[index];
  if (!prep) return literal;
  if ((fn === 'test' || fn === 'extract' || fn === 'regexReplace') && index === 1) {
    safeRegex(literal);
    return literal;
  }
  return prep(literal, env);
}
