import { IxError } from '../../core/errors.js';
import { compileExpression, type CompileOptions, type ExpressionContext } from './compile.js';
import { str } from './runtime.js';

/** A compiled string template such as `orders.${region}`: each `${…}` is an expression. */
export interface Template {
  (ctx: ExpressionContext): string;
  readonly source: string;
  /** True when the template has no `${…}` (the text is constant). */
  readonly constant: boolean;
}

/** Compiles a template once. `\${` writes a literal `${`. Null and missing render empty. */
export function compileTemplate(src: string, options: CompileOptions = {}): Template {
  const parts: (string | ((ctx: ExpressionContext) => unknown))[] = [];
  let text = '';
  let i = 0;
  while (i < src.length) {
    if (src.startsWith('\\${', i)) {
      text += '${';
      i += 3;
      continue;
    }
    if (src.startsWith('${', i)) {
      const end = closing(src, i + 2);
      if (end < 0) throw new IxError('IX_EXPR_SYNTAX', { expr: src, pos: i + 1, detail: 'unclosed ${' });
      if (text) parts.push(text);
      text = '';
      parts.push(compileExpression(src.slice(i + 2, end), options));
      i = end + 1;
      continue;
    }
    text += src[i];
    i++;
  }
  if (text) parts.push(text);
  const constant = parts.every((p) => typeof p === 'string');
  const fn =
    constant
      ? (): string => parts.join('')
      : (ctx: ExpressionContext): string => {
          let out = '';
          for (const p of parts) out += typeof p === 'string' ? p : str(p(ctx));
          return out;
        };
  return Object.assign(fn, { source: src, constant });
}

/** The index of the `}` closing a `${` opened before `from`, skipping strings and nested braces. */
function closing(src: string, from: number): number {
  let depth = 0;
  for (let i = from; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "'" || c === '`') {
      for (i++; i < src.length && src[i] !== c; i++) if (src[i] === '\\') i++;
    } else if (c === '{') depth++;
    else if (c === '}') {
      if (depth === 0) return i;
      depth--;
    }
  }
  return -1;
}
