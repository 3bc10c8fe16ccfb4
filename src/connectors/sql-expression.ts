/**
 * The `expression` conflict policy of the SQL sinks, behind one function:
 * `compileConflictExpression(text)` returns a predicate over the incoming (`source`) and the
 * stored (`target`) row: true means the incoming row replaces the stored one. The text is an
 * expression of the project's expression language (src/transform) evaluated with
 * `{ source, target }` as its payload: `source.version > target.version or target.status = 'draft'`.
 */
import { compileExpression } from '../transform/index.js';

export type ConflictPredicate = (source: Record<string, unknown>, target: Record<string, unknown>) => boolean;

/** Compiles a conflict expression once; throws naming the position on bad input. */
export function compileConflictExpression(text: string): ConflictPredicate {
  const expr = compileExpression(text);
  return (source, target) => Boolean(expr({ payload: { source, target } }));
}
