import { stringify } from 'yaml';
import { IxError } from '../../core/errors.js';

/**
 * `ix import openapi FILE --service NAME`: turns an OpenAPI 3 document into a `secrets:` and
 * `services:` block — base URL, auth from the security schemes, one endpoint per operation
 * with its parameters, request and response schemas ($refs resolved, cycles cut).
 */
export interface ImportOptions {
  readonly service: string;
  /** Deepest $ref chain inlined. @defaultValue 6 */
  readonly maxDepth?: number;
}

type Obj = Record<string, unknown>;

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch'] as const;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function pointer(doc: Obj, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let cur: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isObj(cur) && !Array.isArray(cur)) return undefined;
    cur = (cur as Obj)[key];
  }
  return cur;
}

/** Resolves local $refs; a cycle or depth past `maxDepth` becomes `{ $comment: 'see X' }`. */
function resolve(doc: Obj, value: unknown, maxDepth: number, stack: string[] = []): unknown {
  if (Array.isArray(value)) return value.map((v) => resolve(doc, v, maxDepth, stack));
  if (!isObj(value)) return value;
  const ref = value['$ref'];
  if (typeof ref === 'string') {
    const name = ref.split('/').pop() ?? ref;
    if (stack.includes(ref) || stack.length >= maxDepth) return { $comment: `recursive: see ${name}` };
    const target = pointer(doc, ref);
    if (target === undefined) return { $comment: `unresolved ${ref}` };
    return resolve(doc, target, maxDepth, [...stack, ref]);
  }
  const out: Obj = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === 'example' || k === 'examples' || k === 'xml') continue;
    out[k] = resolve(doc, v, maxDepth, stack);
  }
  return out;
}

function envName(service: string, scheme: string, what: string): string {
  return `${service}_${scheme}_${what}`.toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '');
}

function endpointName(op: Obj, method: string, path: string, taken: Set<string>): string {
  let base = typeof op['operationId'] === 'string' && op['operationId'] ? op['operationId'] : `${method}_${path}`;
  base = base.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/_+/g, '_').replace(/^_+|_+$/g, '') || method;
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}_${i}`;
  taken.add(name);
  return name;
}

function baseUrlOf(doc: Obj): string {
  const servers = Array.isArray(doc['servers']) ? (doc['servers'] as Obj[]) : [];
  const first = servers[0];
  if (!first || typeof first['url'] !== 'string') return 'http://127.0.0.1:8080';
  const vars = isObj(first['variables']) ? (first['variables'] as Record<string, Obj>) : {};
  return first['url'].replace(/\{([^}]+)\}/g, (_m, name: string) => String(vars[name]?.['default'] ?? name));
}

function jsonContent(content: unknown): unknown {
  if (!isObj(content)) return undefined;
  const key = Object.keys(content).find((k) => k.includes('json')) ?? Object.keys(content)[0];
  const media = key ? content[key] : undefined;
  return isObj(media) ? media['schema'] : undefined;
}

interface AuthOut {
  auth?: Obj;
  secrets: Record<string, string>;
  notes: string[];
}

function authFrom(doc: Obj, service: string): AuthOut {
  const components = isObj(doc['components']) ? doc['components'] : {};
  const schemes = isObj(components['securitySchemes']) ? (components['securitySchemes'] as Record<string, Obj>) : {};
  const global = Array.isArray(doc['security']) ? (doc['security'] as Obj[]) : [];
  const order = [...new Set([...global.flatMap((s) => Object.keys(s)), ...Object.keys(schemes)])];
  const out: AuthOut = { secrets: {}, notes: [] };
  for (const name of order) {
    const raw = schemes[name];
    if (!raw) continue;
    const s = resolve(doc, raw, 3) as Obj;
    const secret = (what: string): string => {
      const env = envName(service, name, what);
      out.secrets[env] = `env:${env}`;
      return `\${secrets.${env}}`;
    };
    let auth: Obj | undefined;
    if (s['type'] === 'apiKey' && (s['in'] === 'header' || s['in'] === 'query')) {
      auth = { type: 'api-key', in: s['in'], name: s['name'], key: secret('key') };
    } else if (s['type'] === 'http' && String(s['scheme']).toLowerCase() === 'basic') {
      auth = { type: 'basic', username: secret('username'), password: secret('password') };
    } else if (s['type'] === 'http' && String(s['scheme']).toLowerCase() === 'bearer') {
      auth = { type: 'bearer', token: secret('token') };
    } else if (s['type'] === 'oauth2' && isObj(s['flows']) && isObj((s['flows'] as Obj)['clientCredentials'])) {
      const flow = (s['flows'] as Obj)['clientCredentials'] as Obj;
      const scopes = isObj(flow['scopes']) ? Object.keys(flow['scopes']).join(' ') : '';
      auth = { type: 'oauth2', grant: 'client-credentials', tokenUrl: flow['tokenUrl'], clientId: secret('client_id'), clientSecret: secret('client_secret'), ...(scopes ? { scope: scopes } : {}) };
    } else if (s['type'] === 'mutualTLS') {
      out.notes.push(`security scheme "${name}" is mutual TLS: set tls.cert, tls.key and tls.ca`);
      continue;
    } else {
      const flows = isObj(s['flows']) ? Object.keys(s['flows']).join(', ') : '';
      out.notes.push(`security scheme "${name}" (${String(s['type'])}${flows ? `: ${flows}` : ''}) has no automatic equivalent: configure auth by hand`);
      continue;
    }
    if (!out.auth) out.auth = auth;
    else out.notes.push(`security scheme "${name}" also exists; the service uses the first one`);
  }
  return out;
}

/** Builds the YAML text of a `secrets:` + `services:` block from an OpenAPI 3 document. */
export function importOpenApi(input: unknown, options: ImportOptions): string {
  if (!isObj(input)) throw new IxError('IX_OPENAPI_INVALID', { detail: 'the document is not an object' });
  const version = input['openapi'];
  if (typeof version !== 'string' || !version.startsWith('3.')) {
    const detail = typeof input['swagger'] === 'string' ? `Swagger ${input['swagger']} (convert it to OpenAPI 3 first)` : 'no "openapi: 3.x" field';
    throw new IxError('IX_OPENAPI_INVALID', { detail });
  }
  if (!isObj(input['paths'])) throw new IxError('IX_OPENAPI_INVALID', { detail: 'no paths' });
  if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(options.service)) {
    throw new IxError('IX_OPENAPI_INVALID', { detail: `service name "${options.service}" must be letters, digits, _ and -` });
  }
  const maxDepth = options.maxDepth ?? 6;
  const doc = input;
  const info = isObj(doc['info']) ? doc['info'] : {};
  const auth = authFrom(doc, options.service);
  const endpoints: Record<string, Obj> = {};
  const taken = new Set<string>();
  for (const [path, rawItem] of Object.entries(doc['paths'] as Obj)) {
    if (!isObj(rawItem)) continue;
    const item = resolve(doc, rawItem, 2) as Obj;
    const shared = Array.isArray(item['parameters']) ? (item['parameters'] as Obj[]) : [];
    for (const method of METHODS) {
      const op = item[method];
      if (!isObj(op)) continue;
      const name = endpointName(op, method, path, taken);
      const ep: Obj = { method: method.toUpperCase(), path };
      const summary = op['summary'] ?? op['description'];
      if (typeof summary === 'string' && summary.trim()) ep['description'] = summary.trim().split('\n')[0];
      const params: Record<string, Obj> = {};
      const own = Array.isArray(op['parameters']) ? (op['parameters'] as Obj[]) : [];
      for (const rawP of [...shared, ...own]) {
        const p = resolve(doc, rawP, maxDepth) as Obj;
        if (typeof p['name'] !== 'string' || (p['in'] !== 'path' && p['in'] !== 'query' && p['in'] !== 'header')) continue;
        const schema = isObj(p['schema']) ? p['schema'] : {};
        const entry: Obj = { in: p['in'] };
        if (p['required'] === true) entry['required'] = true;
        if (schema['type'] !== undefined) entry['type'] = schema['type'];
        if (Array.isArray(schema['enum'])) entry['enum'] = schema['enum'];
        if (typeof p['description'] === 'string') entry['description'] = p['description'].split('\n')[0];
        params[p['name']] = entry;
      }
      if (Object.keys(params).length > 0) ep['params'] = params;
      const body = isObj(op['requestBody']) ? (resolve(doc, op['requestBody'], maxDepth) as Obj) : undefined;
      const reqSchema = body ? jsonContent(body['content']) : undefined;
      if (reqSchema !== undefined) ep['request'] = { schema: resolve(doc, reqSchema, maxDepth) };
      const responses = isObj(op['responses']) ? (op['responses'] as Obj) : {};
      const okKey = Object.keys(responses).find((k) => /^2\d\d$|^2XX$/i.test(k));
      const ok = okKey ? (resolve(doc, responses[okKey], maxDepth) as Obj) : undefined;
      const resSchema = ok ? jsonContent(ok['content']) : undefined;
      if (resSchema !== undefined) ep['response'] = { schema: resolve(doc, resSchema, maxDepth) };
      endpoints[name] = ep;
    }
  }
  const svc: Obj = { type: 'rest' };
  const title = [info['title'], info['version']].filter((x) => typeof x === 'string').join(' ');
  if (title) svc['description'] = title;
  svc['baseUrl'] = baseUrlOf(doc);
  if (auth.auth) svc['auth'] = auth.auth;
  svc['endpoints'] = endpoints;
  const out: Obj = {};
  if (Object.keys(auth.secrets).length > 0) out['secrets'] = auth.secrets;
  out['services'] = { [options.service]: svc };
  const header = [
    `# Imported from OpenAPI ${version}${title ? `: ${title}` : ''} by ix import openapi.`,
    `# ${Object.keys(endpoints).length} endpoints. Add rateLimit, retry, circuitBreaker and errors as the API documents them.`,
    ...auth.notes.map((n) => `# NOTE: ${n}`),
  ].join('\n');
  return `${header}\n${stringify(out, { lineWidth: 0, aliasDuplicateObjects: false })}`;
}
