import { IxError } from '../../core/errors.js';
import { Emitter, buildFunction, type ExpressionContext } from '../expression/compile.js';
import { resetBudget } from '../expression/runtime.js';
import { converter, eachError, fieldError, flattenInto, keepCopy, lookupIn, missingError, setIn } from './ops.js';
import type { MappingPlan, Path, RowPlan } from './plan.js';

/** A compiled mapping: record in, new record out. Throws `permanent()` errors per field. */
export interface CompiledMapping {
  (record: unknown, ctx?: ExpressionContext): Record<string, unknown>;
  readonly mappingName: string;
  /** Without resetting the iteration budget (for `each` inside another mapping). */
  readonly inner: (record: unknown, ctx: ExpressionContext) => Record<string, unknown>;
  /** Resolves the mappings that `each` names; throws when one is unknown. */
  link(): void;
  /** The generated JavaScript (for tests and `ix` debugging). */
  readonly code: string;
}

export type MappingResolver = (name: string) => CompiledMapping;

interface Ref {
  readonly name: string;
  fn: CompiledMapping | undefined;
  readonly resolve: MappingResolver | undefined;
}

function deref(ref: Ref): CompiledMapping {
  if (!ref.fn) {
    if (!ref.resolve) throw new IxError('IX_SPEC_UNKNOWN_REFERENCE', { ref: `mappings.${ref.name}`, hint: '' });
    ref.fn = ref.resolve(ref.name);
  }
  return ref.fn;
}

const EMPTY_CTX: ExpressionContext = {};

/**
 * Compiles a checked plan into one JavaScript function. Only checked values reach the
 * source: keys through JSON.stringify, everything else as constants `K[i]`; expressions
 * through the expression emitter (whose output refers only to helpers and constants).
 */
export function compileMapping(plan: MappingPlan, resolve?: MappingResolver): CompiledMapping {
  const em = new Emitter(plan.env);
  const refs: Ref[] = [];
  const k = (v: unknown): string => em.constant(v);
  const lines: string[] = [];
  // When every row writes one top-level field unconditionally, the values go to locals and
  // the record is built as one object literal (one hidden class, no growing), like hand-written code.
  const literal = plan.rows.length > 0 && !plan.keep && plan.rows.every(writesOneField);
  if (literal) lines.push(`let ${plan.rows.map((r) => `x${r.index}`).join(', ')};`);
  else lines.push(plan.keep ? `const o = ${k(keepCopy)}(r, ${k(plan.notCopied)});` : 'const o = {};');
  lines.push('let v, row = -1;');
  lines.push('try {');
  for (const row of plan.rows) lines.push(emitRow(row));
  lines.push(`} catch (e) { throw ${k(fail)}(${k(plan.name)}, ${k(plan.rows)}, row, e); }`);
  if (literal) lines.push(`return { ${plan.rows.map((r) => `${JSON.stringify(String(r.to[0]))}: x${r.index}`).join(', ')} };`);
  else lines.push('return o;');

  function emitRow(row: RowPlan): string {
    const out: string[] = [`row = ${row.index};`];
    const write = emitWrite(row);
    const dflt = row.default !== null && typeof row.default === 'object' ? `${k(structuredClone)}(${k(row.default)})` : k(row.default);
    const body: string[] = [];
    if (row.from !== undefined) {
      body.push(`v = ${pathCode(row.from)};`);
      const missing =
        row.hasDefault ? `v = ${dflt}; ${write}` : row.missing === 'null' ? `v = null; ${write}` : row.missing === 'skip' ? '' : `throw ${k(missingError)}(${k(plan.name)}, ${k(row)});`;
      body.push(`if (v === undefined) { ${missing} } else {`);
    } else {
      body.push(row.transforms.length > 0 ? 'v = r; {' : 'v = undefined; {');
    }
    for (const t of row.transforms) body.push(`v = ${em.emit(t.tree, t.statics, 'v', 'r')};`);
    if (row.lookup) body.push(`v = ${k(lookupIn)}(${k(row.lookup)}, v);`);
    if (row.each !== undefined) {
      let sub: string;
      if (typeof row.each === 'string') {
        const ref: Ref = { name: row.each, fn: undefined, resolve };
        refs.push(ref);
        sub = `${k(deref)}(${k(ref)}).inner`;
      } else sub = `${k(compileMapping(row.each, resolve).inner)}`;
      body.push(`if (Array.isArray(v)) { const f = ${sub}; v = v.map((x) => f(x, c)); } else if (v != null) throw ${k(eachError)}(v);`);
    }
    if (row.type !== 'any') body.push(`v = ${k(converter(row.type, row.format, row.timezone))}(v);`);
    if (row.hasDefault) body.push(`if (v == null) v = ${dflt};`);
    else body.push('if (v === undefined) v = null;');
    body.push(write, '}');
    if (row.when) out.push(`if (${em.emit(row.when.tree, row.when.statics, 'r', 'r')}) {`, ...body, '}');
    else out.push(...body);
    return out.join('\n');
  }

  function emitWrite(row: RowPlan): string {
    if (literal) return `x${row.index} = v;`;
    if (row.flatten !== undefined) return `${k(flattenInto)}(o, ${JSON.stringify(row.to.join('.'))}, ${JSON.stringify(row.flatten)}, v);`;
    if (row.to.length === 1) {
      const key = row.to[0] as string | number;
      return `o[${JSON.stringify(String(key))}] = v;`;
    }
    return `${k(setIn)}(o, ${k(row.to)}, v);`;
  }

  function pathCode(path: Path): string {
    let code = 'r';
    for (const seg of path) code = typeof seg === 'number' ? `index(${code}, ${seg})` : em.member(code, seg);
    return code;
  }

  const body = `${em.declarations()}\n${lines.join('\n')}`;
  const inner = buildFunction(['r', 'c'], body, em.constants) as (r: unknown, c: ExpressionContext) => Record<string, unknown>;
  const fn = (record: unknown, ctx: ExpressionContext = EMPTY_CTX): Record<string, unknown> => {
    resetBudget();
    return inner(record, ctx);
  };
  return Object.assign(fn, {
    mappingName: plan.name,
    inner,
    code: body,
    link(): void {
      for (const ref of refs) deref(ref).link();
    },
  });
}

/** A row that always writes exactly one top-level field (so the record can be one literal). */
function writesOneField(row: RowPlan): boolean {
  const skips = row.from !== undefined && !row.hasDefault && row.missing === 'skip';
  return row.flatten === undefined && row.to.length === 1 && row.when === undefined && !skips;
}

function fail(mapping: string, rows: readonly RowPlan[], row: number, err: unknown): unknown {
  const plan = rows[row];
  if (!plan) return err;
  return fieldError(mapping, plan, err);
}
