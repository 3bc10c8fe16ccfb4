import { IxError } from '../../core/errors.js';
import { FORBIDDEN_KEYS, VAR_NAMES, type BinOp, type Node, type VarName } from './ast.js';

/** Size limits: an expression is refused at compile time beyond them. */
export const LIMITS = {
  /** Characters of source. */
  maxSource: 4096,
  /** Nesting depth of the syntax tree. */
  maxDepth: 48,
  /** Nodes in the syntax tree. */
  maxNodes: 1500,
  /** Lambdas nested inside one another (bounds the iteration degree). */
  maxLambdaNesting: 3,
} as const;

type Tok =
  | { k: 'num'; v: number; pos: number }
  | { k: 'str'; v: string; pos: number }
  | { k: 'id'; v: string; pos: number }
  | { k: 'var'; v: string; pos: number }
  | { k: 'op'; v: string; pos: number }
  | { k: 'eof'; pos: number };

const OPS = ['=>', '==', '!=', '<=', '>=', '&&', '||', '??', '+', '-', '*', '/', '%', '&', '<', '>', '=', '!', '?', ':', '.', ',', '(', ')', '[', ']', '{', '}', '|'];

export function syntaxError(src: string, pos: number, detail: string): IxError {
  return new IxError('IX_EXPR_SYNTAX', { expr: clip(src), pos: pos + 1, detail });
}

function clip(src: string): string {
  return src.length > 80 ? `${src.slice(0, 77)}...` : src;
}

function lex(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const n = src.length;
  while (i < n) {
    const c = src.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13) {
      i++;
      continue;
    }
    const start = i;
    const ch = src[i] as string;
    if ((c >= 48 && c <= 57) || (ch === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const m = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(src.slice(i));
      const text = (m as RegExpExecArray)[0];
      out.push({ k: 'num', v: Number(text), pos: start });
      i += text.length;
      continue;
    }
    if (ch === '"' || ch === "'") {
      let s = '';
      i++;
      for (;;) {
        if (i >= n) throw syntaxError(src, start, 'unterminated string');
        const d = src[i] as string;
        if (d === ch) {
          i++;
          break;
        }
        if (d === '\\') {
          const e = src[i + 1];
          if (e === undefined) throw syntaxError(src, i, 'unterminated string');
          const map: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '`': '`', $: '$', '0': '\0' };
          if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(src.slice(i + 2, i + 6))) {
            s += String.fromCharCode(parseInt(src.slice(i + 2, i + 6), 16));
            i += 6;
            continue;
          }
          const r = map[e];
          if (r === undefined) throw syntaxError(src, i, `unknown escape \\${e}`);
          s += r;
          i += 2;
          continue;
        }
        s += d;
        i++;
      }
      out.push({ k: 'str', v: s, pos: start });
      continue;
    }
    if (ch === '`') {
      const end = src.indexOf('`', i + 1);
      if (end < 0) throw syntaxError(src, start, 'unterminated `quoted name`');
      out.push({ k: 'id', v: src.slice(i + 1, end), pos: start });
      i = end + 1;
      continue;
    }
    if (ch === '$') {
      const m = /^\$[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
      const text = m ? m[0] : '$';
      out.push({ k: 'var', v: text.slice(1), pos: start });
      i += text.length;
      continue;
    }
    if (/[A-Za-z_]/.test(ch)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i)) as RegExpExecArray;
      out.push({ k: 'id', v: m[0], pos: start });
      i += m[0].length;
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (!op) throw syntaxError(src, i, `unexpected character "${ch}"`);
    out.push({ k: 'op', v: op, pos: start });
    i += op.length;
  }
  out.push({ k: 'eof', pos: n });
  return out;
}

/** What the parser must know about functions: which exist and where lambdas go. */
export interface FunctionTable {
  has(name: string): boolean;
}

const KEYWORDS = new Set(['true', 'false', 'null', 'and', 'or', 'not', 'in']);

/**
 * Parses an expression into a tree. Bare names are fields of the record, `$` the current
 * value, `$record`/`$headers`/`$meta`/`$key`/`$id` the message; `x => …` lambdas only as
 * function arguments; `a | f(b)` is `f(a, b)`.
 */
export function parse(src: string, functions: FunctionTable): Node {
  if (typeof src !== 'string') throw syntaxError(String(src), 0, 'an expression is a string');
  if (src.length > LIMITS.maxSource) {
    throw new IxError('IX_EXPR_LIMIT', { detail: `expression is ${src.length} characters; the limit is ${LIMITS.maxSource}` });
  }
  const toks = lex(src);
  let p = 0;
  let depth = 0;
  let nodes = 0;
  let lambdaDepth = 0;
  let nextSlot = 0;
  const scopes: Map<string, number>[] = [];

  const peek = (): Tok => toks[p] as Tok;
  const isOp = (v: string): boolean => {
    const t = peek();
    return t.k === 'op' && t.v === v;
  };
  const isKw = (v: string): boolean => {
    const t = peek();
    return t.k === 'id' && t.v === v;
  };
  const expect = (v: string): void => {
    if (!isOp(v)) throw syntaxError(src, peek().pos, `expected "${v}" but found ${describe(peek())}`);
    p++;
  };
  const node = <N extends Node>(n: N): N => {
    if (++nodes > LIMITS.maxNodes) {
      throw new IxError('IX_EXPR_LIMIT', { detail: `expression has more than ${LIMITS.maxNodes} nodes` });
    }
    return n;
  };
  const enter = (): void => {
    if (++depth > LIMITS.maxDepth) throw new IxError('IX_EXPR_LIMIT', { detail: `expression nests deeper than ${LIMITS.maxDepth}` });
  };
  const checkKey = (key: string, pos: number): void => {
    if (FORBIDDEN_KEYS.has(key)) throw new IxError('IX_EXPR_FORBIDDEN', { expr: clip(src), pos: pos + 1, name: key });
  };

  function pipe(): Node {
    enter();
    let left = cond();
    while (isOp('|')) {
      const pos = peek().pos;
      p++;
      const t = peek();
      if (t.k !== 'id' || KEYWORDS.has(t.v)) throw syntaxError(src, t.pos, 'a function name must follow "|"');
      p++;
      if (!functions.has(t.v)) throw new IxError('IX_EXPR_UNKNOWN_FUNCTION', { name: t.v, pos: t.pos + 1, expr: clip(src) });
      const args: Node[] = [left];
      if (isOp('(')) args.push(...argList());
      left = node({ t: 'call', fn: t.v, args, pos });
    }
    depth--;
    return left;
  }

  function cond(): Node {
    const test = coalesce();
    if (!isOp('?')) return test;
    const pos = peek().pos;
    p++;
    const then = pipe();
    expect(':');
    const els = pipe();
    return node({ t: 'cond', test, then, else: els, pos });
  }

  function coalesce(): Node {
    let left = or();
    while (isOp('??')) {
      const pos = peek().pos;
      p++;
      left = node({ t: 'coalesce', left, right: or(), pos });
    }
    return left;
  }

  function or(): Node {
    let left = and();
    while (isOp('||') || isKw('or')) {
      const pos = peek().pos;
      p++;
      left = node({ t: 'or', left, right: and(), pos });
    }
    return left;
  }

  function and(): Node {
    let left = cmp();
    while (isOp('&&') || isKw('and')) {
      const pos = peek().pos;
      p++;
      left = node({ t: 'and', left, right: cmp(), pos });
    }
    return left;
  }

  function cmp(): Node {
    const left = add();
    const t = peek();
    const op = t.k === 'op' && ['==', '=', '!=', '<', '<=', '>', '>='].includes(t.v) ? t.v : t.k === 'id' && t.v === 'in' ? 'in' : undefined;
    if (op === undefined) return left;
    p++;
    const right = add();
    return node({ t: 'bin', op: (op === '=' ? '==' : op) as BinOp, left, right, pos: t.pos });
  }

  function add(): Node {
    let left = mul();
    for (;;) {
      const t = peek();
      if (t.k === 'op' && (t.v === '+' || t.v === '-' || t.v === '&')) {
        p++;
        left = node({ t: 'bin', op: t.v as BinOp, left, right: mul(), pos: t.pos });
      } else return left;
    }
  }

  function mul(): Node {
    let left = unary();
    for (;;) {
      const t = peek();
      if (t.k === 'op' && (t.v === '*' || t.v === '/' || t.v === '%')) {
        p++;
        left = node({ t: 'bin', op: t.v as BinOp, left, right: unary(), pos: t.pos });
      } else return left;
    }
  }

  function unary(): Node {
    const t = peek();
    if ((t.k === 'op' && (t.v === '!' || t.v === '-')) || (t.k === 'id' && t.v === 'not')) {
      p++;
      enter();
      const arg = unary();
      depth--;
      if (t.v === '-' && arg.t === 'lit' && typeof arg.v === 'number') return node({ t: 'lit', v: -arg.v, pos: t.pos });
      return node({ t: 'unary', op: t.v === '-' ? '-' : '!', arg, pos: t.pos });
    }
    return postfix();
  }

  function postfix(): Node {
    let obj = primary();
    for (;;) {
      const t = peek();
      if (t.k === 'op' && t.v === '.') {
        p++;
        const k = peek();
        if (k.k !== 'id') throw syntaxError(src, k.pos, 'a field name must follow "."');
        p++;
        checkKey(k.v, k.pos);
        obj = node({ t: 'member', obj, key: k.v, pos: k.pos });
      } else if (t.k === 'op' && t.v === '[') {
        p++;
        const index = pipe();
        expect(']');
        if (index.t === 'lit' && typeof index.v === 'string') {
          checkKey(index.v, index.pos);
          obj = node({ t: 'member', obj, key: index.v, pos: t.pos });
        } else obj = node({ t: 'index', obj, index, pos: t.pos });
      } else return obj;
    }
  }

  function argList(): Node[] {
    expect('(');
    const args: Node[] = [];
    if (!isOp(')')) {
      for (;;) {
        args.push(lambdaOrPipe());
        if (isOp(',')) {
          p++;
          continue;
        }
        break;
      }
    }
    expect(')');
    return args;
  }

  /** `x => body` or `(x, i) => body`; anything else is an ordinary argument. */
  function lambdaOrPipe(): Node {
    const t = peek();
    const params: { name: string; pos: number }[] = [];
    let isLambda = false;
    if (t.k === 'id' && !KEYWORDS.has(t.v) && toks[p + 1]?.k === 'op' && (toks[p + 1] as { v: string }).v === '=>') {
      params.push({ name: t.v, pos: t.pos });
      p += 2;
      isLambda = true;
    } else if (t.k === 'op' && t.v === '(') {
      let q = p + 1;
      const names: { name: string; pos: number }[] = [];
      let ok = true;
      for (;;) {
        const a = toks[q] as Tok;
        if (a.k === 'op' && a.v === ')' && names.length === 0) break;
        if (a.k !== 'id' || KEYWORDS.has(a.v)) {
          ok = false;
          break;
        }
        names.push({ name: a.v, pos: a.pos });
        q++;
        const b = toks[q] as Tok;
        if (b.k === 'op' && b.v === ',') {
          q++;
          continue;
        }
        break;
      }
      const close = toks[q] as Tok;
      const arrow = toks[q + 1] as Tok | undefined;
      if (ok && close.k === 'op' && close.v === ')' && arrow?.k === 'op' && arrow.v === '=>') {
        params.push(...names);
        p = q + 2;
        isLambda = true;
      }
    }
    if (!isLambda) return pipe();
    if (++lambdaDepth > LIMITS.maxLambdaNesting) {
      throw new IxError('IX_EXPR_LIMIT', { detail: `lambdas nest deeper than ${LIMITS.maxLambdaNesting}` });
    }
    const scope = new Map<string, number>();
    const slots: number[] = [];
    for (const prm of params) {
      checkKey(prm.name, prm.pos);
      const slot = nextSlot++;
      scope.set(prm.name, slot);
      slots.push(slot);
    }
    scopes.push(scope);
    const body = pipe();
    scopes.pop();
    lambdaDepth--;
    return node({ t: 'lambda', slots, body, pos: t.pos });
  }

  function primary(): Node {
    const t = peek();
    switch (t.k) {
      case 'num':
        p++;
        return node({ t: 'lit', v: t.v, pos: t.pos });
      case 'str':
        p++;
        return node({ t: 'lit', v: t.v, pos: t.pos });
      case 'var': {
        p++;
        if (t.v === '') return node({ t: 'cur', pos: t.pos });
        if (!(VAR_NAMES as readonly string[]).includes(t.v)) {
          throw syntaxError(src, t.pos, `unknown variable $${t.v} (known: $, ${VAR_NAMES.map((v) => `$${v}`).join(', ')})`);
        }
        return node({ t: 'var', name: t.v as VarName, pos: t.pos });
      }
      case 'id': {
        p++;
        if (t.v === 'true' || t.v === 'false') return node({ t: 'lit', v: t.v === 'true', pos: t.pos });
        if (t.v === 'null') return node({ t: 'lit', v: null, pos: t.pos });
        if (KEYWORDS.has(t.v)) throw syntaxError(src, t.pos, `unexpected "${t.v}"`);
        if (isOp('(')) {
          if (!functions.has(t.v)) throw new IxError('IX_EXPR_UNKNOWN_FUNCTION', { name: t.v, pos: t.pos + 1, expr: clip(src) });
          enter();
          const args = argList();
          depth--;
          return node({ t: 'call', fn: t.v, args, pos: t.pos });
        }
        for (let s = scopes.length - 1; s >= 0; s--) {
          const slot = (scopes[s] as Map<string, number>).get(t.v);
          if (slot !== undefined) return node({ t: 'local', slot, name: t.v, pos: t.pos });
        }
        checkKey(t.v, t.pos);
        return node({ t: 'field', name: t.v, pos: t.pos });
      }
      case 'op': {
        if (t.v === '(') {
          p++;
          const inner = pipe();
          expect(')');
          return inner;
        }
        if (t.v === '[') {
          p++;
          enter();
          const items: Node[] = [];
          while (!isOp(']')) {
            items.push(pipe());
            if (!isOp(',')) break;
            p++;
          }
          expect(']');
          depth--;
          return node({ t: 'array', items, pos: t.pos });
        }
        if (t.v === '{') {
          p++;
          enter();
          const props: [string, Node][] = [];
          while (!isOp('}')) {
            const k = peek();
            if (k.k !== 'id' && k.k !== 'str') throw syntaxError(src, k.pos, 'an object key is a name or a string');
            p++;
            checkKey(k.v, k.pos);
            expect(':');
            props.push([k.v, pipe()]);
            if (!isOp(',')) break;
            p++;
          }
          expect('}');
          depth--;
          return node({ t: 'object', props, pos: t.pos });
        }
        throw syntaxError(src, t.pos, `unexpected ${describe(t)}`);
      }
      case 'eof':
        throw syntaxError(src, t.pos, 'unexpected end of expression');
    }
  }

  const tree = pipe();
  if (peek().k !== 'eof') throw syntaxError(src, peek().pos, `unexpected ${describe(peek())}`);
  return tree;
}

function describe(t: Tok): string {
  switch (t.k) {
    case 'eof':
      return 'end of expression';
    case 'str':
      return `string "${t.v}"`;
    case 'num':
      return `number ${t.v}`;
    case 'var':
      return `$${t.v}`;
    default:
      return `"${t.v}"`;
  }
}

/** Whether the tree mentions `$` (the current value) outside lambdas' own parameters. */
export function usesCurrent(n: Node): boolean {
  let found = false;
  walk(n, (x) => {
    if (x.t === 'cur') found = true;
  });
  return found;
}

export function walk(n: Node, visit: (n: Node) => void): void {
  visit(n);
  switch (n.t) {
    case 'member':
      walk(n.obj, visit);
      break;
    case 'index':
      walk(n.obj, visit);
      walk(n.index, visit);
      break;
    case 'unary':
      walk(n.arg, visit);
      break;
    case 'bin':
    case 'and':
    case 'or':
    case 'coalesce':
      walk(n.left, visit);
      walk(n.right, visit);
      break;
    case 'cond':
      walk(n.test, visit);
      walk(n.then, visit);
      walk(n.else, visit);
      break;
    case 'call':
      for (const a of n.args) walk(a, visit);
      break;
    case 'lambda':
      walk(n.body, visit);
      break;
    case 'array':
      for (const a of n.items) walk(a, visit);
      break;
    case 'object':
      for (const [, v] of n.props) walk(v, visit);
      break;
    default:
      break;
  }
}
