import { Value } from '@sinclair/typebox/value';
import { IxError } from '../../core/errors.js';
import { FORBIDDEN_KEYS, type Node } from '../expression/ast.js';
import { parseExpression } from '../expression/compile.js';
import { usesCurrent } from '../expression/parse.js';
import { FUNCTIONS, type CompileEnv } from '../expression/runtime.js';
import { checkFormat, checkZone } from '../expression/date.js';
import { FieldRow, MappingConfig } from './config.js';

/** A path into a record: field names and array indexes. Empty: the record itself. */
export type Path = readonly (string | number)[];

export interface CheckedExpression {
  readonly source: string;
  readonly tree: Node;
  readonly statics: Map<Node, unknown>;
}

/** A checked row, ready for the compiler and the reference interpreter alike. */
export interface RowPlan {
  readonly index: number;
  /** `from` → `to`, for messages. */
  readonly label: string;
  readonly from: Path | undefined;
  readonly to: Path;
  readonly transforms: readonly CheckedExpression[];
  readonly lookup: ReadonlyMap<string, unknown> | undefined;
  readonly each: MappingPlan | string | undefined;
  readonly type: 'string' | 'number' | 'integer' | 'boolean' | 'date' | 'any';
  readonly format: string | undefined;
  readonly timezone: string;
  readonly hasDefault: boolean;
  readonly default: unknown;
  readonly when: CheckedExpression | undefined;
  readonly missing: 'null' | 'skip' | 'error';
  readonly sensitive: boolean;
  readonly flatten: string | undefined;
}

export interface MappingPlan {
  readonly name: string;
  readonly rows: readonly RowPlan[];
  readonly keep: boolean;
  /** With keep: top-level source fields that rows read (not copied) or that `drop` names. */
  readonly notCopied: ReadonlySet<string>;
  readonly env: CompileEnv;
}

export function mappingError(mapping: string, detail: string): IxError {
  return new IxError('IX_MAPPING_INVALID', { mapping: `"${mapping}"`, detail });
}

/** Parses `customer.address.city`, `items[0].sku`, `` `odd name`.x ``, `$`. */
export function parsePath(mapping: string, text: string, what: string): Path {
  if (text.trim() === '$' ) return [];
  let tree: Node;
  try {
    tree = parseExpression(text).tree;
  } catch (err) {
    throw mappingError(mapping, `${what} "${text}" is not a path: ${(err as Error).message}`);
  }
  const out: (string | number)[] = [];
  let n: Node = tree;
  for (;;) {
    if (n.t === 'field') {
      out.unshift(n.name);
      break;
    }
    if (n.t === 'cur') break;
    if (n.t === 'member') {
      out.unshift(n.key);
      n = n.obj;
      continue;
    }
    if (n.t === 'index' && n.index.t === 'lit' && typeof n.index.v === 'number' && Number.isInteger(n.index.v)) {
      out.unshift(n.index.v);
      n = n.obj;
      continue;
    }
    throw mappingError(mapping, `${what} "${text}" is not a path (names, dots and [index] only)`);
  }
  return out;
}

/** Parses a target path: names and non-negative indexes; never a forbidden key. */
function parseTarget(mapping: string, text: string): Path {
  if (text === '') return [];
  const path = parsePath(mapping, text, 'to');
  for (const seg of path) {
    if (typeof seg === 'string' && FORBIDDEN_KEYS.has(seg)) throw mappingError(mapping, `to "${text}" writes "${seg}", which is not allowed`);
    if (typeof seg === 'number' && (seg < 0 || seg > 10_000)) throw mappingError(mapping, `to "${text}": an index is from 0 to 10000`);
  }
  return path;
}

function checkExpr(mapping: string, label: string, src: string, env: CompileEnv): CheckedExpression {
  try {
    const { tree, statics } = parseExpression(src, env);
    return { source: src, tree, statics };
  } catch (err) {
    throw mappingError(mapping, `field ${label}: ${(err as Error).message}`);
  }
}

const HEAD = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\(|\||$)/;

/**
 * A transform with a `from` that does not mention `$` and starts with a function name is a
 * pipeline applied to the value: `trim | upper` means `$ | trim | upper`.
 */
function checkTransform(mapping: string, label: string, src: string, env: CompileEnv, hasFrom: boolean): CheckedExpression {
  const direct = (): CheckedExpression => checkExpr(mapping, label, src, env);
  if (!hasFrom) return direct();
  const head = HEAD.exec(src);
  if (!head || !Object.hasOwn(FUNCTIONS, head[1] as string)) return direct();
  let asIs: CheckedExpression | undefined;
  try {
    asIs = direct();
  } catch {
    asIs = undefined;
  }
  if (asIs && usesCurrent(asIs.tree)) return asIs;
  try {
    const piped = checkExpr(mapping, label, `$ | ${src}`, env);
    return { ...piped, source: src };
  } catch (err) {
    if (asIs) return asIs;
    throw err;
  }
}

export interface PlanOptions {
  readonly lookups: ReadonlyMap<string, ReadonlyMap<string, unknown>>;
  readonly now?: () => number;
}

/** Checks a mapping's config and resolves what can be resolved once. */
export function planMapping(name: string, raw: unknown, options: PlanOptions): MappingPlan {
  if (!Value.Check(MappingConfig, raw)) {
    const first = [...Value.Errors(MappingConfig, raw)][0];
    throw mappingError(name, `${first?.path || '/'} ${first?.message ?? 'is invalid'}`);
  }
  const config = raw;
  const env: CompileEnv = { lookups: options.lookups, ...(options.now ? { now: options.now } : {}) };
  const mappingMissing = config.missing ?? 'null';
  const rows: RowPlan[] = config.fields.map((row, index) => {
    if (!Value.Check(FieldRow, row)) {
      const first = [...Value.Errors(FieldRow, row)][0];
      throw mappingError(name, `fields[${index}]${first?.path ?? ''} ${first?.message ?? 'is invalid'}`);
    }
    const label = row.from !== undefined ? `${row.from} → ${row.to}` : row.to;
    const from = row.from !== undefined ? parsePath(name, row.from, 'from') : undefined;
    const to = parseTarget(name, row.to);
    if (to.length === 0 && row.flatten === undefined) throw mappingError(name, `field ${label}: "to" is empty (only a flatten row writes into the top level)`);
    if (from === undefined && row.transform === undefined && !('default' in row)) {
      throw mappingError(name, `field ${label}: needs from, transform (a calculated field) or default (a constant)`);
    }
    const list = row.transform === undefined ? [] : Array.isArray(row.transform) ? row.transform : [row.transform];
    const transforms = list.map((t, i) => checkTransform(name, label, t, env, from !== undefined || i > 0));
    let lookup: ReadonlyMap<string, unknown> | undefined;
    if (row.lookup !== undefined) {
      lookup = options.lookups.get(row.lookup);
      if (!lookup) {
        const known = [...options.lookups.keys()];
        throw mappingError(name, `field ${label}: unknown lookup table "${row.lookup}"${known.length ? ` (known: ${known.join(', ')})` : ' (declare it under lookups:)'}`);
      }
    }
    let each: MappingPlan | string | undefined;
    if (typeof row.each === 'string') each = row.each;
    else if (row.each !== undefined) each = planMapping(`${name}.fields[${index}].each`, row.each, options);
    const type = row.type ?? 'any';
    if ((row.format !== undefined || row.timezone !== undefined) && type !== 'date') {
      throw mappingError(name, `field ${label}: format and timezone go with type: date`);
    }
    let format: string | undefined;
    let timezone = 'UTC';
    try {
      if (row.format !== undefined) format = checkFormat(row.format);
      if (row.timezone !== undefined) timezone = checkZone(row.timezone);
    } catch (err) {
      throw mappingError(name, `field ${label}: ${(err as Error).message}`);
    }
    return {
      index,
      label,
      from,
      to,
      transforms,
      lookup,
      each,
      type,
      format,
      timezone,
      hasDefault: 'default' in row && row.default !== undefined,
      default: row.default,
      when: row.when !== undefined ? checkExpr(name, label, row.when, env) : undefined,
      missing: row.missing ?? mappingMissing,
      sensitive: row.sensitive ?? false,
      flatten: row.flatten,
    };
  });
  const notCopied = new Set<string>(config.drop ?? []);
  for (const r of rows) {
    const root = r.from?.[0];
    if (typeof root === 'string') notCopied.add(root);
  }
  return { name, rows, keep: config.unmapped === 'keep', notCopied, env };
}
