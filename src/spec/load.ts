import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Ajv2020, type AnySchemaObject, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import type { DataValidationCxt, SchemaValidateFunction } from 'ajv/dist/types/index.js';
import addFormatsImport from 'ajv-formats';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node, type Pair, type Scalar } from 'yaml';
import { IxError } from '../core/errors.js';
import type { Registry } from '../registry/registry.js';
import { buildSpecSchema, SLOT_KEYWORD, type JsonSchema } from '../registry/schema.js';
import { CREDENTIAL_HEADER_KEYWORD, SECRET_KEYWORD } from '../registry/types.js';
import { hint } from './did-you-mean.js';
import { SpecError, type SpecProblem } from './problem.js';
import { checkSyncs, shapeSyncs } from './syncs.js';
import type { ComponentSpec, ErrorPolicy, FlowSpec, Spec, SpecPath } from './types.js';

const addFormats = addFormatsImport as unknown as (ajv: Ajv2020) => void;

export interface Position {
  readonly line: number;
  readonly col: number;
}

export interface LoadedSpec {
  readonly file: string;
  readonly baseDir: string;
  readonly spec: Spec;
  /** Resolved secret values, for redaction. Never print them. */
  readonly secretValues: readonly string[];
  /** The position of a path in the file (the nearest existing ancestor). */
  locate(path: SpecPath): Position;
  /** An error located at `path`, as a SpecError with one problem. */
  errorAt(path: SpecPath, err: unknown): SpecError;
}

export interface LoadOptions {
  /** Environment for `env:` secrets and `${env.X}`; defaults to process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

const validators = new WeakMap<Registry, ValidateFunction>();

/**
 * JSON pointers of the values written as one `${secrets.NAME}` reference, for the spec being
 * validated right now (validation is synchronous). References are resolved before validation,
 * so the `x-ix-secret` keyword cannot tell a reference from a literal by the value itself.
 */
let secretRefPointers: ReadonlySet<string> = new Set();
/** The same for values that hold a `${secrets.NAME}` among other text (`Bearer ${secrets.TOKEN}`). */
let secretPartPointers: ReadonlySet<string> = new Set();

function isSecretReference(_schema: unknown, data: unknown, _parent?: unknown, cxt?: { instancePath: string }): boolean {
  return typeof data !== 'string' || secretRefPointers.has(cxt?.instancePath ?? '');
}

/** A credential header's value: a secret reference, or a `${…}` template filled from the message. */
function isCredentialHeaderValue(_schema: unknown, data: unknown, _parent?: unknown, cxt?: { instancePath: string }): boolean {
  return typeof data !== 'string' || secretPartPointers.has(cxt?.instancePath ?? '') || data.includes('${');
}

/** Marks, in the compiled spec schema, where a component's config is validated by its own schema. */
const COMPONENT_KEYWORD = 'x-ix-component';

/** The data an error of a kind's validator was about (Ajv overwrites `data` when it passes them up). */
const componentErrorData = new WeakMap<object, unknown>();
/** Its schema path within the kind's schema (Ajv overwrites it with the keyword's), prefixed by the kind. */
const componentSchemaPath = new WeakMap<object, string>();

/**
 * The spec schema with each component kind's config schema replaced by a reference that is
 * compiled the first time a spec uses that kind: compiling every registered kind at start-up
 * cost seconds and ~80 MB, for the two or three a spec names. The errors are the same (the
 * kind's validator runs at the same instance path, with the same schema).
 */
function lazyComponents(schema: JsonSchema, kinds: Map<string, JsonSchema>): JsonSchema {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== 'object') return node;
    const obj = node as JsonSchema;
    const slot = obj[SLOT_KEYWORD];
    const out: JsonSchema = {};
    for (const [k, v] of Object.entries(obj)) {
      if (typeof slot === 'string' && k === 'properties') {
        const props: JsonSchema = {};
        for (const [kind, config] of Object.entries(v as JsonSchema)) {
          const ref = `${slot}:${kind}`;
          kinds.set(ref, config as JsonSchema);
          props[kind] = { [COMPONENT_KEYWORD]: ref };
        }
        out[k] = props;
      } else out[k] = walk(v);
    }
    return out;
  };
  return walk(schema) as JsonSchema;
}

function validatorFor(registry: Registry): ValidateFunction {
  let v = validators.get(registry);
  if (!v) {
    // A spec is validated once per process: Ajv's code optimization passes cost more at
    // start-up (about half the compile) than they could save on that one run.
    const ajv = new Ajv2020({ allErrors: true, useDefaults: true, coerceTypes: true, verbose: true, strict: false, code: { optimize: false } });
    addFormats(ajv);
    ajv.addKeyword({ keyword: SLOT_KEYWORD, schemaType: 'string' });
    ajv.addKeyword({ keyword: SECRET_KEYWORD, schemaType: 'boolean', validate: isSecretReference });
    ajv.addKeyword({ keyword: CREDENTIAL_HEADER_KEYWORD, schemaType: 'boolean', validate: isCredentialHeaderValue });
    const kinds = new Map<string, JsonSchema>();
    const compiled = new Map<string, ValidateFunction>();
    const component: SchemaValidateFunction = (ref: string, data: unknown, _parent?: AnySchemaObject, cxt?: DataValidationCxt): boolean => {
      let kindValidator = compiled.get(ref);
      if (!kindValidator) {
        kindValidator = ajv.compile(kinds.get(ref) ?? {});
        compiled.set(ref, kindValidator);
      }
      const ok = kindValidator(data, cxt);
      const errors = ok ? [] : (kindValidator.errors ?? []);
      for (const e of errors) {
        componentErrorData.set(e, e.data);
        componentSchemaPath.set(e, `${ref}${e.schemaPath}`);
      }
      component.errors = errors;
      return ok;
    };
    ajv.addKeyword({ keyword: COMPONENT_KEYWORD, schemaType: 'string', modifying: true, errors: true, validate: component });
    v = ajv.compile(lazyComponents(buildSpecSchema(registry), kinds));
    validators.set(registry, v);
  }
  return v;
}

/** Loads, interpolates and validates a spec file. Throws SpecError with file:line:col problems. */
export function loadSpecFile(file: string, registry: Registry, options: LoadOptions = {}): LoadedSpec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const detail = code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new SpecError([{ file, line: 1, col: 1, code: 'IX_SPEC_FILE_NOT_FOUND', message: `cannot read spec: ${detail}` }]);
  }
  return loadSpecText(text, file, registry, options);
}

export function loadSpecText(text: string, file: string, registry: Registry, options: LoadOptions = {}): LoadedSpec {
  const env = options.env ?? process.env;
  const baseDir = dirname(resolve(file));
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const pos = (offset: number): Position => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, col: p.col };
  };
  if (doc.errors.length > 0) {
    throw new SpecError(
      doc.errors.map((e) => {
        const p = pos(e.pos[0]);
        const detail = e.message.split('\n')[0] ?? e.message;
        return { file, ...p, code: 'IX_SPEC_YAML', message: new IxError('IX_SPEC_YAML', { detail }).message };
      }),
    );
  }
  const locateNode = (path: SpecPath, key = false): Position => locateIn(doc, path, key, pos);
  const problems: SpecProblem[] = [];
  const at = (path: SpecPath, err: IxError, key = false): void => {
    problems.push({ file, ...locateNode(path, key), code: err.code, message: err.message });
  };

  const root: unknown = doc.contents;
  if (!isMap(root)) {
    throw new SpecError([{ file, line: 1, col: 1, code: 'IX_SPEC_INVALID', message: 'a spec is a YAML mapping with version and flows' }]);
  }

  // Secret and environment references, resolved in place (the values stay in memory only).
  const secretRefs = new Set<Scalar>();
  const partRefs = new Set<Scalar>();
  const secretValues = resolveReferences(doc, baseDir, env, secretRefs, partRefs, (node, err) => {
    problems.push({ file, ...pos(node.range?.[0] ?? 0), code: err.code, message: err.message });
  });
  if (problems.length > 0) throw new SpecError(problems);

  const value = doc.toJS({ maxAliasCount: 100 }) as Record<string, unknown>;
  const validate = validatorFor(registry);
  secretRefPointers = pointersOf(doc, secretRefs);
  secretPartPointers = pointersOf(doc, partRefs);
  let valid: boolean;
  try {
    valid = validate(value) as boolean;
  } finally {
    secretRefPointers = new Set();
    secretPartPointers = new Set();
  }
  if (!valid) {
    // Unions inside a kind's schema are told apart by their own schema paths.
    for (const e of validate.errors ?? []) e.schemaPath = componentSchemaPath.get(e) ?? e.schemaPath;
    for (const e of pickErrors(validate.errors ?? [])) {
      const { path, err, key } = describeAjvError(e, registry);
      at(path, err, key);
    }
    throw new SpecError(dedupe(problems));
  }

  const spec = shape(value);
  for (const flow of spec.flows) {
    if (flow.sinks.length === 0) {
      at(flow.path, new IxError('IX_SPEC_INVALID', { path: `flow "${flow.name}"`, detail: 'needs a sink (or sinks)' }), true);
    }
  }
  if (value['flows'] === undefined && value['syncs'] === undefined) {
    at([], new IxError('IX_SPEC_INVALID', { path: 'the spec', detail: 'needs flows (or syncs)' }));
  }
  problems.push(...checkSyncs(spec, locateNode, file));
  const rawFlows = (value['flows'] ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, raw] of Object.entries(rawFlows)) {
    if (raw['sink'] !== undefined && raw['sinks'] !== undefined) {
      at(['flows', name, 'sinks'], new IxError('IX_SPEC_INVALID', { path: `flow "${name}"`, detail: 'has both sink and sinks: use one' }), true);
    }
  }
  if (problems.length > 0) throw new SpecError(problems);

  return {
    file,
    baseDir,
    spec,
    secretValues,
    locate: (path) => locateNode(path),
    errorAt: (path, err) => {
      const p = locateNode(path);
      const code = err instanceof IxError ? err.code : 'IX_SPEC_INVALID';
      const message = err instanceof Error ? err.message : String(err);
      return new SpecError([{ file, ...p, code, message }]);
    },
  };
}

function dedupe(problems: SpecProblem[]): SpecProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.line}:${p.col}:${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * In a union whose branches are told apart by a constant (`type: bearer`) or by the value's
 * type (a string or a list), keeps only the errors of the one branch that matched that way:
 * the other branches' "type must be …" are noise. Other unions (durations) keep their summary.
 */
function pickBranches(errors: ErrorObject[]): ErrorObject[] {
  const objectLevel = new Set(['required', 'additionalProperties', 'minProperties', 'maxProperties']);
  let out = errors;
  for (const union of errors.filter((e) => e.keyword === 'anyOf')) {
    const prefix = `${union.schemaPath}/`;
    const at = union.instancePath;
    const branchOf = (e: ErrorObject): string | undefined =>
      e.schemaPath.startsWith(prefix) && (e.instancePath === at || e.instancePath.startsWith(`${at}/`))
        ? /^\d+/.exec(e.schemaPath.slice(prefix.length))?.[0]
        : undefined;
    const count = ((union.parentSchema as Record<string, unknown> | undefined)?.['anyOf'] as unknown[] | undefined)?.length ?? 0;
    const mismatched = new Set<string>();
    for (const e of out) {
      const b = branchOf(e);
      if (b === undefined) continue;
      const child = e.instancePath !== at && !e.instancePath.slice(at.length + 1).includes('/');
      if ((e.keyword === 'const' && child) || (e.keyword === 'type' && e.instancePath === at)) mismatched.add(b);
    }
    if (count < 2 || mismatched.size !== count - 1) continue;
    const kept = [...Array(count).keys()].map(String).find((b) => !mismatched.has(b));
    const own = out.filter((e) => branchOf(e) === kept);
    if (own.length === 0 || own.some((e) => e.instancePath === at && !objectLevel.has(e.keyword))) continue;
    out = out.filter((e) => e !== union && (branchOf(e) === undefined || branchOf(e) === kept));
  }
  return out;
}

/** Drops the noise of allErrors: `if`/`anyOf` summaries when a more precise error exists. */
function pickErrors(all: ErrorObject[]): ErrorObject[] {
  const errors = pickBranches(all);
  const precise = errors.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf' && e.keyword !== 'if');
  // For anyOf unions (durations), report the union once rather than each branch.
  const out: ErrorObject[] = [];
  const anyOfPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  for (const e of precise) {
    if (anyOfPaths.has(e.instancePath)) continue;
    out.push(e);
  }
  for (const e of errors) if (e.keyword === 'anyOf') out.push(e);
  return out.length > 0 ? out : errors;
}

function pointerToPath(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function describe(path: SpecPath): string {
  if (path.length === 0) return 'the spec';
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[');
}

function describeAjvError(e: ErrorObject, registry: Registry): { path: SpecPath; err: IxError; key: boolean } {
  const path = pointerToPath(e.instancePath);
  const parent = (e.parentSchema ?? {}) as Record<string, unknown>;
  const slot = parent[SLOT_KEYWORD] as string | undefined;
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(params['additionalProperty']);
      const allowed = Object.keys((parent['properties'] as Record<string, unknown> | undefined) ?? {});
      if (slot) {
        return {
          path: [...path, key],
          key: true,
          err: new IxError('IX_SPEC_UNKNOWN_COMPONENT', { slot, kind: key, hint: hint(key, allowed) || knownList(allowed) }),
        };
      }
      return { path: [...path, key], key: true, err: new IxError('IX_SPEC_UNKNOWN_KEY', { key, hint: hint(key, allowed) }) };
    }
    case 'required': {
      const missing = String(params['missingProperty']);
      return { path, key: false, err: new IxError('IX_SPEC_INVALID', { path: describe(path), detail: `is missing "${missing}"` }) };
    }
    case 'maxProperties':
      if (slot) {
        return { path, key: false, err: new IxError('IX_SPEC_INVALID', { path: describe(path), detail: `names more than one ${slot} kind: use exactly one` }) };
      }
      break;
    case 'minProperties':
      if (slot) {
        const kinds = [...registry.slot(slot as 'source').keys()];
        return { path, key: false, err: new IxError('IX_SPEC_INVALID', { path: describe(path), detail: `names no ${slot} kind${knownList(kinds)}` }) };
      }
      break;
    case 'type': {
      const data: unknown = componentErrorData.has(e) ? componentErrorData.get(e) : e.data;
      const got = Array.isArray(data) ? 'array' : data === null ? 'null' : typeof data;
      return { path, key: false, err: new IxError('IX_SPEC_INVALID', { path: describe(path), detail: `must be ${String(params['type'])}, not ${got}` }) };
    }
    case 'enum': {
      const allowed = (params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ');
      return { path, key: false, err: new IxError('IX_SPEC_INVALID', { path: describe(path), detail: `must be one of ${allowed}` }) };
    }
    case 'const':
      if (path.length === 1 && path[0] === 'version') {
        return { path, key: false, err: new IxError('IX_SPEC_VERSION', { version: JSON.stringify(e.data) }) };
      }
      return { path, key: false, err: new IxError('IX_SPEC_INVALID', { path: describe(path), detail: `must be ${JSON.stringify(params['allowedValue'])}` }) };
    case 'anyOf': {
      const branches = JSON.stringify(parent['anyOf'] ?? []);
      if (branches.includes('ms|sec|min')) {
        return { path, key: false, err: new IxError('IX_SPEC_INVALID', { path: describe(path), detail: 'is not a valid duration (use e.g. 200ms, 5s, 5m, 2h, 1d)' }) };
      }
      if (branches.includes('i?[bB]')) {
        return { path, key: false, err: new IxError('IX_SPEC_INVALID', { path: describe(path), detail: 'is not a valid size (use e.g. 512KiB, 1MiB, 10MB)' }) };
      }
      const desc = typeof parent['description'] === 'string' ? ` (${(parent['description'] as string).split('\n')[0]})` : '';
      return { path, key: false, err: new IxError('IX_SPEC_INVALID', { path: describe(path), detail: `is not valid${desc}` }) };
    }
    case 'pattern': {
      const desc = typeof parent['description'] === 'string' ? `: ${(parent['description'] as string).split('\n')[0]}` : '';
      return { path, key: false, err: new IxError('IX_SPEC_INVALID', { path: describe(path), detail: `has an invalid form${desc || ` (expected ${String(params['pattern'])})`}` }) };
    }
    case SECRET_KEYWORD:
    case CREDENTIAL_HEADER_KEYWORD:
      return { path, key: false, err: new IxError('IX_SPEC_LITERAL_SECRET', { path: describe(path) }) };
    case 'propertyNames':
      return { path, key: false, err: new IxError('IX_SPEC_INVALID', { path: describe(path), detail: `has an invalid name "${String(params['propertyName'])}"` }) };
    default:
      break;
  }
  return { path, key: false, err: new IxError('IX_SPEC_INVALID', { path: describe(path), detail: e.message ?? 'is invalid' }) };
}

function knownList(kinds: string[]): string {
  return kinds.length > 0 ? ` (known: ${kinds.sort().join(', ')})` : '';
}

/** The node at `path`, or its nearest existing ancestor; with `key`, the key of the last segment. */
function locateIn(doc: Document, path: SpecPath, key: boolean, pos: (o: number) => Position): Position {
  let node: unknown = doc.contents;
  let last: Position = { line: 1, col: 1 };
  const rangeOf = (n: unknown): Position | undefined => {
    const r = (n as Node | null)?.range;
    return r ? pos(r[0]) : undefined;
  };
  last = rangeOf(node) ?? last;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (isMap(node)) {
      const pair = node.items.find((p: Pair) => (isScalar(p.key) ? p.key.value : p.key) === seg);
      if (!pair) return last;
      if (key && i === path.length - 1) return rangeOf(pair.key) ?? last;
      node = pair.value;
      last = rangeOf(node) ?? rangeOf(pair.key) ?? last;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (node === undefined) return last;
      last = rangeOf(node) ?? last;
    } else {
      return last;
    }
  }
  return last;
}

const REF_RE = /\$\{\s*(secrets|env)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}/g;

const ONE_SECRET_RE = /^\s*\$\{\s*secrets\.[A-Za-z_][A-Za-z0-9_]*\s*\}\s*$/;
const SOME_SECRET_RE = /\$\{\s*secrets\.[A-Za-z_][A-Za-z0-9_]*\s*\}/;

/** The JSON pointer of each scalar in `nodes` (through aliases too), as validation sees the value. */
function pointersOf(doc: Document, nodes: ReadonlySet<Scalar>): Set<string> {
  const out = new Set<string>();
  if (nodes.size === 0) return out;
  const walk = (node: unknown, pointer: string, depth: number): void => {
    if (depth > 64) return;
    const n = isAlias(node) ? node.resolve(doc) : node;
    if (isScalar(n)) {
      if (nodes.has(n)) out.add(pointer);
    } else if (isMap(n)) {
      for (const pair of n.items) {
        const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        walk(pair.value, `${pointer}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`, depth + 1);
      }
    } else if (isSeq(n)) {
      n.items.forEach((item, i) => walk(item, `${pointer}/${i}`, depth + 1));
    }
  };
  walk(doc.contents, '', 0);
  return out;
}

function resolveReferences(
  doc: Document,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
  secretRefs: Set<Scalar>,
  partRefs: Set<Scalar>,
  report: (node: Node, err: IxError) => void,
): string[] {
  const declared = new Map<string, string>();
  const secretsNode = (doc.contents as { get?: (k: string, keep: boolean) => unknown }).get?.('secrets', true);
  if (isMap(secretsNode)) {
    for (const pair of secretsNode.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const v = isScalar(pair.value) ? pair.value.value : undefined;
      if (typeof v === 'string') declared.set(k, v);
    }
  }
  const cache = new Map<string, string>();
  const values: string[] = [];
  const resolveSecret = (name: string): string => {
    const hit = cache.get(name);
    if (hit !== undefined) return hit;
    const ref = declared.get(name);
    if (ref === undefined) {
      throw new IxError('IX_SPEC_UNKNOWN_REFERENCE', { ref: `secrets.${name}`, hint: hint(name, declared.keys()) || ' (declare it under secrets:)' });
    }
    let value: string;
    if (ref.startsWith('env:')) {
      const v = env[ref.slice(4)];
      if (v === undefined || v === '') {
        throw new IxError('IX_SPEC_MISSING_SECRET', { name, detail: `is not set: environment variable ${ref.slice(4)} is empty or missing` });
      }
      value = v;
    } else if (ref.startsWith('file:')) {
      const p = resolve(baseDir, ref.slice(5));
      try {
        value = readFileSync(p, 'utf8').replace(/\r?\n$/, '');
      } catch {
        throw new IxError('IX_SPEC_MISSING_SECRET', { name, detail: `is not set: cannot read file ${ref.slice(5)}` });
      }
    } else {
      throw new IxError('IX_SPEC_MISSING_SECRET', { name, detail: 'must be env:VAR or file:PATH' });
    }
    cache.set(name, value);
    if (value.length > 0) values.push(value);
    return value;
  };
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      const original = node.value;
      if (ONE_SECRET_RE.test(original)) secretRefs.add(node);
      if (SOME_SECRET_RE.test(original)) partRefs.add(node);
      try {
        node.value = original.replace(REF_RE, (_m, ns: string, name: string) => {
          if (ns === 'secrets') return resolveSecret(name);
          const v = env[name];
          if (v === undefined) throw new IxError('IX_SPEC_REFERENCE', { detail: `environment variable ${name} is not set (referenced as \${env.${name}})` });
          return v;
        });
      } catch (err) {
        report(node, err instanceof IxError ? err : new IxError('IX_SPEC_REFERENCE', { detail: String(err) }));
      }
    },
  });
  return values;
}

function shape(value: Record<string, unknown>): Spec {
  const flows: FlowSpec[] = [];
  const rawFlows = (value['flows'] ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, raw] of Object.entries(rawFlows)) {
    const base = ['flows', name] as const;
    const component = (v: unknown, path: SpecPath): ComponentSpec => {
      const [kind, config] = Object.entries(v as Record<string, unknown>)[0] as [string, unknown];
      return { kind, config, path: [...path, kind] };
    };
    const steps = ((raw['steps'] as unknown[] | undefined) ?? []).map((s, i) => component(s, [...base, 'steps', i]));
    const sinks =
      raw['sinks'] !== undefined
        ? (raw['sinks'] as unknown[]).map((s, i) => component(s, [...base, 'sinks', i]))
        : raw['sink'] !== undefined
          ? [component(raw['sink'], [...base, 'sink'])]
          : [];
    const flow: FlowSpec = {
      name,
      source: component(raw['source'], [...base, 'source']),
      steps,
      sinks,
      concurrency: raw['concurrency'] as number,
      batchSize: raw['batchSize'] as number,
      order: typeof raw['orderBy'] === 'string' ? 'key' : ((raw['order'] as 'none' | 'key' | undefined) ?? 'none'),
      errors: raw['errors'] as ErrorPolicy,
      path: base,
    };
    if (typeof raw['orderBy'] === 'string') (flow as { orderBy?: string }).orderBy = raw['orderBy'];
    if (typeof raw['description'] === 'string') (flow as { description?: string }).description = raw['description'];
    flows.push(flow);
  }
  const known = new Set(['version', 'name', 'description', 'secrets', 'store', 'http', 'admin', 'shutdown', 'flows', 'syncs']);
  const sections: Record<string, Record<string, unknown>> = {};
  for (const [k, v] of Object.entries(value)) if (!known.has(k)) sections[k] = v as Record<string, unknown>;
  const spec: Spec = {
    version: 1,
    http: value['http'] as Spec['http'],
    admin: value['admin'] as Spec['admin'],
    shutdown: value['shutdown'] as Spec['shutdown'],
    sections,
    flows,
    syncs: shapeSyncs((value['syncs'] ?? {}) as Record<string, Record<string, unknown>>),
  };
  for (const k of ['name', 'description', 'store'] as const) {
    if (typeof value[k] === 'string') (spec as unknown as Record<string, unknown>)[k] = value[k];
  }
  return spec;
}
