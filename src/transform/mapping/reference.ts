import { closureBackend, type ExpressionContext } from '../expression/compile.js';
import { get, index, resetBudget } from '../expression/runtime.js';
import { convert, eachError, fieldError, flattenInto, keepCopy, lookupIn, missingError, setIn } from './ops.js';
import type { MappingPlan, Path, RowPlan } from './plan.js';

/**
 * A straightforward interpreter of a mapping plan: walks the rows, evaluates expressions
 * with the closure backend. The property tests hold the compiled mapping to it.
 */
export function interpretMapping(plan: MappingPlan, record: unknown, ctx: ExpressionContext = {}, resolve?: (name: string) => MappingPlan): Record<string, unknown> {
  resetBudget();
  return run(plan, record, ctx, resolve);
}

function readPath(r: unknown, path: Path): unknown {
  let v = r;
  for (const seg of path) v = typeof seg === 'number' ? index(v, seg) : get(v, seg);
  return v;
}

function cloneDefault(v: unknown): unknown {
  return v !== null && typeof v === 'object' ? structuredClone(v) : v;
}

function run(plan: MappingPlan, r: unknown, ctx: ExpressionContext, resolve?: (name: string) => MappingPlan): Record<string, unknown> {
  const o = plan.keep ? keepCopy(r, plan.notCopied) : {};
  const write = (row: RowPlan, v: unknown): void => {
    if (row.flatten !== undefined) flattenInto(o, row.to.join('.'), row.flatten, v);
    else if (row.to.length === 1) o[String(row.to[0])] = v;
    else setIn(o, row.to, v, plan.keep);
  };
  for (const row of plan.rows) {
    try {
      if (row.when && !closureBackend(row.when.tree, row.when.statics, plan.env)(r, r, ctx)) continue;
      let v: unknown;
      if (row.from !== undefined) {
        v = readPath(r, row.from);
        if (v === undefined) {
          if (row.hasDefault) write(row, cloneDefault(row.default));
          else if (row.missing === 'null') write(row, null);
          else if (row.missing === 'error') throw missingError(plan.name, row);
          continue;
        }
      } else v = row.transforms.length > 0 ? r : undefined;
      for (const t of row.transforms) v = closureBackend(t.tree, t.statics, plan.env)(v, r, ctx);
      if (row.lookup) v = lookupIn(row.lookup, v);
      if (row.each !== undefined) {
        const sub = typeof row.each === 'string' ? (resolve as (n: string) => MappingPlan)(row.each) : row.each;
        if (Array.isArray(v)) v = v.map((x) => run(sub, x, ctx, resolve));
        else if (v !== null && v !== undefined) throw eachError(v);
      }
      v = convert(row.type, v, row.format, row.timezone);
      if (row.hasDefault && (v === null || v === undefined)) v = cloneDefault(row.default);
      if (v === undefined) v = null;
      write(row, v);
    } catch (err) {
      throw fieldError(plan.name, row, err);
    }
  }
  return o;
}
