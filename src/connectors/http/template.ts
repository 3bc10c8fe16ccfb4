/**
 * Templates in service and component configs: `${payload.id}`, `${meta.tenant}`,
 * `${headers.x-request-id}`. A string that is exactly one `${…}` yields the raw value (an
 * object stays an object); otherwise values are interpolated as text.
 *
 * This is the one function to swap for the transform engine's `compileExpression` once it
 * lands: every template in the http and graphql connectors goes through `compileTemplate`.
 */
export type Compiled = (scope: unknown) => unknown;

const WHOLE_RE = /^\$\{\s*([^}]+?)\s*\}$/;
const PART_RE = /\$\{\s*([^}]+?)\s*\}/g;

/** Reads `a.b[0].c` (or `$.a.b`) from a value; undefined when any step is missing. */
export function readPath(value: unknown, path: string): unknown {
  return pathReader(path)(value);
}

/** `readPath` for one path, parsed once: templates read the same path for every message. */
export function pathReader(path: string): (value: unknown) => unknown {
  let p = path.trim();
  if (p === '$' || p === '') return (value) => value;
  if (p.startsWith('$.')) p = p.slice(2);
  else if (p.startsWith('$[')) p = p.slice(1);
  const keys = p
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .filter((k) => k !== '');
  return (value) => {
    let cur: unknown = value;
    for (const k of keys) {
      if (cur === null || cur === undefined || typeof cur !== 'object') return undefined;
      cur = (cur as Record<string, unknown>)[k];
    }
    return cur;
  };
}

function toText(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Compiles a template (any JSON value: strings inside objects and arrays are templated too). */
export function compileTemplate(template: unknown): Compiled {
  if (typeof template === 'string') {
    const whole = WHOLE_RE.exec(template);
    if (whole && !template.slice(2, -1).includes('${')) {
      return pathReader(whole[1] as string);
    }
    if (!template.includes('${')) return () => template;
    const parts: (string | ((scope: unknown) => unknown))[] = [];
    let last = 0;
    for (const m of template.matchAll(PART_RE)) {
      parts.push(template.slice(last, m.index));
      parts.push(pathReader(m[1] as string));
      last = (m.index ?? 0) + m[0].length;
    }
    parts.push(template.slice(last));
    return (scope) => {
      let out = '';
      for (const p of parts) out += typeof p === 'string' ? p : toText(p(scope));
      return out;
    };
  }
  if (Array.isArray(template)) {
    const items = template.map(compileTemplate);
    return (scope) => items.map((f) => f(scope));
  }
  if (template !== null && typeof template === 'object') {
    const entries = Object.entries(template).map(([k, v]) => [k, compileTemplate(v)] as const);
    return (scope) => {
      const out: Record<string, unknown> = {};
      for (const [k, f] of entries) out[k] = f(scope);
      return out;
    };
  }
  return () => template;
}

/** True when a string holds a `${…}` template. */
export function isTemplate(value: unknown): boolean {
  return typeof value === 'string' && value.includes('${');
}

/**
 * Compiles an endpoint path: `{name}` is a path parameter (OpenAPI style) taken from
 * `params`, `${expr}` is read from the template scope; both are URL-encoded.
 */
export function compilePath(path: string): (params: Readonly<Record<string, unknown>>, scope: unknown) => string {
  const re = /\$\{\s*([^}]+?)\s*\}|\{([^}]+)\}/g;
  if (!path.includes('{')) return () => path;
  // parsed once: literal text, and per placeholder its name and how to read its value
  const parts: (string | { readonly label: string; readonly read: (params: Readonly<Record<string, unknown>>, scope: unknown) => unknown })[] = [];
  let last = 0;
  for (const m of path.matchAll(re)) {
    parts.push(path.slice(last, m.index));
    const expr = m[1];
    const name = m[2] as string;
    if (expr !== undefined) {
      const read = pathReader(expr);
      parts.push({ label: expr, read: (_params, scope) => read(scope) });
    } else parts.push({ label: name, read: (params) => params[name] });
    last = (m.index ?? 0) + m[0].length;
  }
  parts.push(path.slice(last));
  return (params, scope) => {
    let out = '';
    for (const p of parts) {
      if (typeof p === 'string') {
        out += p;
        continue;
      }
      const v = p.read(params, scope);
      if (v === undefined || v === null || v === '') throw new RangeError(`path parameter "${p.label}" has no value`);
      out += encodeURIComponent(String(v));
    }
    return out;
  };
}
