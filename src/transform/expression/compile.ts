import { IxError } from '../../core/errors.js';
import type { Node } from './ast.js';
import { parse, usesCurrent } from './parse.js';
import * as rt from './runtime.js';
import { FUNCTIONS, prepareStatic, resetBudget, type CompileEnv, type FnDef } from './runtime.js';

/**
 * What an expression sees. `$` is `value` when given, else `payload`; bare names are fields
 * of `payload`; `$headers`, `$meta`, `$key`, `$id` come from the message. A Message is one.
 */
export interface ExpressionContext {
  readonly payload?: unknown;
  readonly value?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly meta?: Readonly<Record<string, unknown>>;
  readonly key?: string | undefined;
  readonly id?: string;
}

/** A compiled expression: call it with a context (a Message will do). */
export interface Expression {
  (ctx: ExpressionContext): unknown;
  readonly source: string;
  /** Whether the expression mentions `$`. */
  readonly usesCurrent: boolean;
}

export interface CompileOptions extends CompileEnv {
  /** `closure` (tree of closures) or `codegen` (JavaScript source from the checked tree). */
  readonly backend?: 'closure' | 'codegen';
}

const functionTable = { has: (name: string): boolean => Object.hasOwn(FUNCTIONS, name) };

/** Parses and checks an expression: unknown functions, arity, lambdas and literal arguments. */
export function parseExpression(src: string, env: CompileEnv = {}): { tree: Node; statics: Map<Node, unknown> } {
  const tree = parse(src, functionTable);
  const statics = new Map<Node, unknown>();
  check(tree, src, env, statics);
  return { tree, statics };
}

function argError(src: string, detail: string): IxError {
  return new IxError('IX_EXPR_ARGUMENTS', { expr: src.length > 80 ? `${src.slice(0, 77)}...` : src, detail });
}

function check(n: Node, src: string, env: CompileEnv, statics: Map<Node, unknown>, inCall = false): void {
  switch (n.t) {
    case 'call': {
      const def = FUNCTIONS[n.fn] as FnDef;
      if (n.args.length < def.min || n.args.length > def.max) {
        const want = def.min === def.max ? `${def.min}` : `${def.min} to ${def.max}`;
        throw argError(src, `${n.fn}() takes ${want} argument${def.max === 1 ? '' : 's'}, got ${n.args.length}`);
      }
      n.args.forEach((a, i) => {
        const wantsLambda = def.lambdas?.includes(i) ?? false;
        if (wantsLambda && a.t !== 'lambda') throw argError(src, `argument ${i + 1} of ${n.fn}() is a function: x => …`);
        if (!wantsLambda && a.t === 'lambda') throw argError(src, `argument ${i + 1} of ${n.fn}() is not a function`);
        if (a.t === 'lambda' && a.slots.length > 2) throw argError(src, `a function given to ${n.fn}() takes (item, index) at most`);
        const prep = def.statics?.[i];
        if (prep) {
          if (a.t !== 'lit') throw argError(src, `argument ${i + 1} of ${n.fn}() must be a literal string`);
          try {
            statics.set(a, prepareStatic(n.fn, i, a.v, env));
          } catch (err) {
            throw argError(src, err instanceof Error ? err.message : String(err));
          }
        }
        check(a, src, env, statics, true);
      });
      return;
    }
    case 'lambda':
      if (!inCall) throw argError(src, 'a function (x => …) may only be an argument of a function');
      check(n.body, src, env, statics);
      return;
    case 'member':
      check(n.obj, src, env, statics);
      return;
    case 'index':
      check(n.obj, src, env, statics);
      check(n.index, src, env, statics);
      return;
    case 'unary':
      check(n.arg, src, env, statics);
      return;
    case 'bin':
    case 'and':
    case 'or':
    case 'coalesce':
      check(n.left, src, env, statics);
      check(n.right, src, env, statics);
      return;
    case 'cond':
      check(n.test, src, env, statics);
      check(n.then, src, env, statics);
      check(n.else, src, env, statics);
      return;
    case 'array':
      for (const x of n.items) check(x, src, env, statics);
      return;
    case 'object':
      for (const [, x] of n.props) check(x, src, env, statics);
      return;
    default:
      return;
  }
}

/** Compiles an expression once; calling the result evaluates it (sandboxed, bounded). */
export function compileExpression(src: string, options: CompileOptions = {}): Expression {
  const { tree, statics } = parseExpression(src, options);
  const body = options.backend === 'closure' ? closureBackend(tree, statics, options) : codegenBackend(tree, statics, options);
  const fn = (ctx: ExpressionContext): unknown => {
    resetBudget();
    const v = ctx !== null && typeof ctx === 'object' && 'value' in ctx ? ctx.value : ctx?.payload;
    return body(v, ctx?.payload, ctx ?? {});
  };
  return Object.assign(fn, { source: src, usesCurrent: usesCurrent(tree) });
}

/** The evaluation entry both backends produce: current value, record, message context. */
export type Evaluator = (v: unknown, r: unknown, c: ExpressionContext) => unknown;

// ---------------------------------------------------------------- closures

interface Scope {
  v: unknown;
  r: unknown;
  c: ExpressionContext;
  l: unknown[];
}
type Closure = (s: Scope) => unknown;

export function closureBackend(tree: Node, statics: Map<Node, unknown>, env: CompileEnv): Evaluator {
  const root = toClosure(tree, statics, env);
  return (v, r, c) => root({ v, r, c, l: [] });
}

function toClosure(n: Node, statics: Map<Node, unknown>, env: CompileEnv): Closure {
  const sub = (x: Node): Closure => toClosure(x, statics, env);
  switch (n.t) {
    case 'lit': {
      const v = n.v;
      return () => v;
    }
    case 'cur':
      return (s) => s.v;
    case 'var': {
      const name = n.name;
      if (name === 'record') return (s) => s.r;
      return (s) => s.c[name];
    }
    case 'field': {
      const k = n.name;
      return (s) => rt.get(s.r, k);
    }
    case 'local': {
      const slot = n.slot;
      return (s) => s.l[slot];
    }
    case 'member': {
      const o = sub(n.obj);
      const k = n.key;
      return (s) => rt.get(o(s), k);
    }
    case 'index': {
      const o = sub(n.obj);
      const i = sub(n.index);
      return (s) => rt.index(o(s), i(s));
    }
    case 'unary': {
      const a = sub(n.arg);
      return n.op === '!' ? (s) => !a(s) : (s) => rt.neg(a(s));
    }
    case 'and': {
      const a = sub(n.left);
      const b = sub(n.right);
      return (s) => Boolean(a(s)) && Boolean(b(s));
    }
    case 'or': {
      const a = sub(n.left);
      const b = sub(n.right);
      return (s) => Boolean(a(s)) || Boolean(b(s));
    }
    case 'coalesce': {
      const a = sub(n.left);
      const b = sub(n.right);
      return (s) => a(s) ?? b(s);
    }
    case 'cond': {
      const t = sub(n.test);
      const a = sub(n.then);
      const b = sub(n.else);
      return (s) => (t(s) ? a(s) : b(s));
    }
    case 'bin': {
      const a = sub(n.left);
      const b = sub(n.right);
      switch (n.op) {
        case '+':
          return (s) => rt.add(a(s), b(s));
        case '&':
          return (s) => rt.str(a(s)) + rt.str(b(s));
        case '-':
        case '*':
        case '/':
        case '%': {
          const op = n.op;
          return (s) => rt.arith(op, a(s), b(s));
        }
        case '==':
          return (s) => rt.eq(a(s), b(s));
        case '!=':
          return (s) => !rt.eq(a(s), b(s));
        case 'in':
          return (s) => rt.member(a(s), b(s));
        default: {
          const op = n.op;
          return (s) => rt.compare(op, a(s), b(s));
        }
      }
    }
    case 'array': {
      const items = n.items.map(sub);
      return (s) => items.map((f) => f(s));
    }
    case 'object': {
      const keys = n.props.map(([k]) => k);
      const vals = n.props.map(([, v]) => sub(v));
      return (s) => rt.object(keys, vals.map((f) => f(s)));
    }
    case 'lambda': {
      const body = sub(n.body);
      const [a, b] = n.slots;
      return (s) => (item: unknown, i: number) => {
        if (a !== undefined) s.l[a] = item;
        if (b !== undefined) s.l[b] = i;
        return body(s);
      };
    }
    case 'call': {
      const def = FUNCTIONS[n.fn] as FnDef;
      const impl = def.impl as (...args: unknown[]) => unknown;
      if (n.fn === 'now') {
        const clock = env.now ?? Date.now;
        return () => impl(clock);
      }
      const args = n.args.map((a) => (statics.has(a) ? ((): Closure => { const v = statics.get(a); return () => v; })() : sub(a)));
      if (args.length === 1) {
        const [a0] = args as [Closure];
        return (s) => impl(a0(s));
      }
      if (args.length === 2) {
        const [a0, a1] = args as [Closure, Closure];
        return (s) => impl(a0(s), a1(s));
      }
      return (s) => impl(...args.map((f) => f(s)));
    }
  }
}

// ---------------------------------------------------------------- code generation

/**
 * JavaScript source for a checked tree. Nothing from the expression's text reaches the
 * source except through JSON.stringify (strings) or as a finite number; names become
 * constant indexes and helper calls. The result refers only to its parameters.
 */
export interface Emitted {
  /** A JavaScript expression over `v` (current), `r` (record), `c` (context). */
  readonly code: string;
}

export class Emitter {
  /** Values the generated code reads as `K<i>` (functions, prepared statics). */
  readonly constants: unknown[] = [];
  private readonly constIndex = new Map<unknown, number>();
  private nextLocal = 0;

  constructor(private readonly env: CompileEnv) {}

  constant(v: unknown): string {
    let i = this.constIndex.get(v);
    if (i === undefined) {
      i = this.constants.length;
      this.constants.push(v);
      this.constIndex.set(v, i);
    }
    return `K${i}`;
  }

  /** A fresh local variable name for generated code. */
  local(prefix = 't'): string {
    return `${prefix}${this.nextLocal++}`;
  }

  /** The `let` declaring every temporary `member` used (empty when none). */
  declarations(): string {
    return this.temps.length === 0 ? '' : `let ${this.temps.join(', ')};`;
  }

  private readonly temps: string[] = [];

  /**
   * `get(obj, key)` inlined for a key known at compile time: a plain object is read with a
   * property load of its own at this site (fast, as hand-written code), a function read is
   * refused as `get` refuses it, anything else goes through `get`.
   */
  member(obj: string, key: string): string {
    const k = JSON.stringify(key);
    let o = obj;
    let assign = '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(obj)) {
      o = this.local();
      this.temps.push(o);
      assign = `(${o} = ${obj}) !== null && `;
    } else assign = `${o} !== null && `;
    const t = this.local();
    this.temps.push(t);
    return `(${assign}typeof ${o} === 'object' ? (typeof (${t} = ${o}[${k}]) === 'function' ? undefined : ${t}) : get(${o}, ${k}))`;
  }

  emit(n: Node, statics: Map<Node, unknown>, cur = 'v', rec = 'r'): string {
    const e = (x: Node): string => this.emit(x, statics, cur, rec);
    switch (n.t) {
      case 'lit':
        return literal(n.v);
      case 'cur':
        return cur;
      case 'var':
        return n.name === 'record' ? rec : `c[${JSON.stringify(n.name)}]`;
      case 'field':
        return this.member(rec, n.name);
      case 'local':
        return `l${n.slot}`;
      case 'member':
        return this.member(e(n.obj), n.key);
      case 'index':
        return `index(${e(n.obj)}, ${e(n.index)})`;
      case 'unary':
        return n.op === '!' ? `!(${e(n.arg)})` : `neg(${e(n.arg)})`;
      case 'and':
        return `(!!(${e(n.left)}) && !!(${e(n.right)}))`;
      case 'or':
        return `(!!(${e(n.left)}) || !!(${e(n.right)}))`;
      case 'coalesce':
        return `((${e(n.left)}) ?? (${e(n.right)}))`;
      case 'cond':
        return `((${e(n.test)}) ? (${e(n.then)}) : (${e(n.else)}))`;
      case 'bin':
        switch (n.op) {
          case '+':
            return `add(${e(n.left)}, ${e(n.right)})`;
          case '&':
            return `(str(${e(n.left)}) + str(${e(n.right)}))`;
          case '-':
          case '*':
          case '/':
          case '%':
            return `arith(${JSON.stringify(n.op)}, ${e(n.left)}, ${e(n.right)})`;
          case '==':
            return `eq(${e(n.left)}, ${e(n.right)})`;
          case '!=':
            return `!eq(${e(n.left)}, ${e(n.right)})`;
          case 'in':
            return `member(${e(n.left)}, ${e(n.right)})`;
          default:
            return `${COMPARE_HELPER[n.op]}(${e(n.left)}, ${e(n.right)})`;
        }
      case 'array':
        return `[${n.items.map(e).join(', ')}]`;
      case 'object':
        return `object(${JSON.stringify(n.props.map(([k]) => k))}, [${n.props.map(([, v]) => e(v)).join(', ')}])`;
      case 'lambda': {
        const params = n.slots.map((s) => `l${s}`);
        return `((${params.join(', ')}) => (${e(n.body)}))`;
      }
      case 'call': {
        const def = FUNCTIONS[n.fn] as FnDef;
        const fn = this.constant(def.impl);
        if (n.fn === 'now') return `${fn}(${this.constant(this.env.now ?? Date.now)})`;
        if (n.fn === 'concat') return `cat(${n.args.map((a) => `str(${e(a)})`).join(' + ')})`;
        const args = n.args.map((a) => (statics.has(a) ? this.constant(statics.get(a)) : e(a)));
        return `${fn}(${args.join(', ')})`;
      }
    }
  }
}

function literal(v: string | number | boolean | null): string {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new IxError('IX_EXPR_LIMIT', { detail: 'a number literal must be finite' });
    return Object.is(v, -0) ? '-0' : String(v);
  }
  return JSON.stringify(v);
}

/** Names of the run-time helpers generated code may call. */
export const HELPER_NAMES = ['get', 'index', 'add', 'arith', 'neg', 'str', 'eq', 'lt', 'le', 'gt', 'ge', 'cat', 'member', 'object'] as const;
const helpers = [rt.get, rt.index, rt.add, rt.arith, rt.neg, rt.str, rt.eq, rt.lt, rt.le, rt.gt, rt.ge, rt.cat, rt.member, rt.object];
const COMPARE_HELPER = { '<': 'lt', '<=': 'le', '>': 'gt', '>=': 'ge' } as const;

/**
 * Builds a function from generated source. `params` are the function's parameters; the
 * body sees only them, the helpers and the constants `K`.
 */
export function buildFunction(params: readonly string[], body: string, constants: readonly unknown[]): (...args: unknown[]) => unknown {
  // Each constant is a `const` of the factory's scope: read like a module constant, not an array element.
  const consts = constants.length === 0 ? '' : `const ${constants.map((_, i) => `K${i} = K[${i}]`).join(', ')};\n`;
  const factory = new Function(
    ...HELPER_NAMES,
    'K',
    `'use strict';\n${consts}return function generated(${params.join(', ')}) {\n${body}\n};`,
  ) as (...a: unknown[]) => (...args: unknown[]) => unknown;
  return factory(...helpers, constants);
}

export function codegenBackend(tree: Node, statics: Map<Node, unknown>, env: CompileEnv): Evaluator {
  const em = new Emitter(env);
  const code = em.emit(tree, statics);
  return buildFunction(['v', 'r', 'c'], `${em.declarations()}\nreturn ${code};`, em.constants) as Evaluator;
}
