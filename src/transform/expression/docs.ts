import { LIMITS } from './parse.js';
import { DEFAULT_DEADLINE_MS, FUNCTIONS, ITERATION_BUDGET, MAX_REGEX_INPUT, MAX_STRING, type FnDef } from './runtime.js';

/**
 * The generated parts of docs/expressions.md: the function table and the limits, rendered
 * from the code so the page cannot drift. The prose around them is written by hand; the
 * generated parts sit between marker comments that `npm run docs` rewrites.
 */

/** Functions by group, in the order the page lists them. Every function is in one group. */
export const FUNCTION_GROUPS: readonly (readonly [string, readonly string[]])[] = [
  ['Text', ['trim', 'ltrim', 'rtrim', 'upper', 'lower', 'title', 'capitalize', 'substring', 'padStart', 'padEnd', 'pad', 'concat', 'join', 'split', 'replace', 'contains', 'startsWith', 'endsWith', 'length']],
  ['Regular expressions', ['test', 'extract', 'regexReplace']],
  ['Numbers and conversion', ['number', 'integer', 'string', 'boolean', 'round', 'floor', 'ceil', 'abs', 'min', 'max']],
  ['Arrays and objects', ['count', 'sum', 'avg', 'map', 'filter', 'find', 'some', 'every', 'first', 'last', 'distinct', 'sort', 'reverse', 'flatten', 'keys', 'values', 'merge']],
  ['Values', ['exists', 'empty', 'coalesce', 'type', 'json', 'parseJson']],
  ['Lookup tables', ['lookup']],
  ['Dates', ['toDate', 'toMillis', 'formatDate', 'now']],
  ['Personal data', ['sha256', 'sha1', 'md5', 'mask', 'maskEmail']],
];

function arity(def: FnDef): string {
  return def.min === def.max ? String(def.min) : `${def.min}–${def.max}`;
}

function notes(def: FnDef): string {
  const out: string[] = [];
  if (def.lambdas?.length) out.push(`argument ${def.lambdas.map((i) => i + 1).join(', ')}: a function \`x => …\``);
  const statics = Object.keys(def.statics ?? {}).map((i) => Number(i) + 1);
  if (statics.length) out.push(`argument ${statics.join(', ')}: a literal, checked when the spec loads`);
  return out.join('; ');
}

const cell = (s: string): string => s.replace(/\|/g, '\\|');

/** The function reference, grouped. */
export function renderFunctionTable(): string {
  const listed = new Set(FUNCTION_GROUPS.flatMap(([, names]) => names));
  const missing = Object.keys(FUNCTIONS).filter((n) => !listed.has(n));
  if (missing.length > 0) throw new Error(`functions without a docs group (add them to FUNCTION_GROUPS): ${missing.join(', ')}`);
  const lines: string[] = [];
  for (const [group, names] of FUNCTION_GROUPS) {
    lines.push(`### ${group}`, '', '| function | arguments | what it does | notes |', '|---|---|---|---|');
    for (const name of names) {
      const def = FUNCTIONS[name];
      if (!def) throw new Error(`FUNCTION_GROUPS lists ${name}, which is not a function`);
      lines.push(`| \`${name}\` | ${arity(def)} | ${cell(def.doc)} | ${cell(notes(def))} |`);
    }
    lines.push('');
  }
  return lines.join('\n').trimEnd();
}

/** The sandbox's size and time bounds. */
export function renderLimits(): string {
  return [
    '| bound | value |',
    '|---|---|',
    `| characters of source | ${LIMITS.maxSource} |`,
    `| nesting depth of the syntax tree | ${LIMITS.maxDepth} |`,
    `| nodes in the syntax tree | ${LIMITS.maxNodes} |`,
    `| lambdas nested inside one another | ${LIMITS.maxLambdaNesting} |`,
    `| array elements visited and lambda calls per evaluation | ${ITERATION_BUDGET.toLocaleString('en')} |`,
    `| wall-clock time per evaluation (a mapping: per record; \`IX_EXPR_DEADLINE_MS\`) | ${DEFAULT_DEADLINE_MS.toLocaleString('en')} ms |`,
    `| length of a string a function or \`+\` builds | ${MAX_STRING.toLocaleString('en')} |`,
    `| length of the text a regular expression runs on | ${MAX_REGEX_INPUT.toLocaleString('en')} |`,
  ].join('\n');
}

/** Replaces the text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`. */
export function fillSection(doc: string, name: string, content: string): string {
  const open = `<!-- generated:${name} (npm run docs) -->`;
  const close = `<!-- /generated:${name} -->`;
  const a = doc.indexOf(open);
  const b = doc.indexOf(close);
  if (a < 0 || b < a) throw new Error(`the page has no ${open} … ${close} section`);
  return `${doc.slice(0, a + open.length)}\n${content}\n${doc.slice(b)}`;
}

/** docs/expressions.md with its generated sections brought up to date. */
export function renderExpressionsPage(doc: string): string {
  return fillSection(fillSection(doc, 'functions', renderFunctionTable()), 'limits', renderLimits());
}
