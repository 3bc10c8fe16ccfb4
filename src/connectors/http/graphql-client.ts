import { createHash } from 'node:crypto';
import type * as Graphql from 'graphql';
import type { DocumentNode, OperationDefinitionNode } from 'graphql';
import type * as GraphqlWs from 'graphql-ws';
import type { Client } from 'graphql-ws';
import type * as Undici from 'undici';
import { IxError, errorMessage } from '../../core/errors.js';
import { RestService, type CallResult, type Endpoint, type ServiceDeps } from './client.js';
import type { ServiceConfig } from './config.js';
import type { Failure } from './errors-table.js';
import { compileTemplate, type Compiled } from './template.js';
import { lazyModule } from '../../core/lazy-module.js';

/** Loaded on first use: a spec without HTTP calls never loads undici. */
const undici = lazyModule<typeof Undici>('undici');

const graphql = lazyModule<typeof Graphql>('graphql');
const graphqlWs = lazyModule<typeof GraphqlWs>('graphql-ws');

export interface GraphqlRequest {
  /** A declared endpoint (operation) name, or undefined with `document`. */
  readonly operation?: string;
  readonly document?: string;
  /** Variables; when absent the operation's `variables` template is rendered against `scope`. */
  readonly variables?: Readonly<Record<string, unknown>>;
  readonly scope?: unknown;
  readonly signal?: AbortSignal;
}

export interface GraphqlResult {
  readonly data: unknown;
  /** GraphQL errors that came with partial data. */
  readonly errors: readonly unknown[];
  readonly result: CallResult;
}

interface Operation {
  readonly endpoint: Endpoint;
  readonly document: string;
  readonly kind: 'query' | 'mutation' | 'subscription';
  readonly name: string | undefined;
  readonly variables: Compiled | undefined;
}

/** Parses a GraphQL document and names its (first) operation's kind. Throws on a syntax error. */
export function operationOf(document: string): { kind: 'query' | 'mutation' | 'subscription'; name: string | undefined; ast: DocumentNode } {
  const ast = graphql().parse(document);
  const op = ast.definitions.find((d): d is OperationDefinitionNode => d.kind === graphql().Kind.OPERATION_DEFINITION);
  if (!op) throw new SyntaxError('the document has no operation');
  return { kind: op.operation as 'query' | 'mutation' | 'subscription', name: op.name?.value, ast };
}

/** A GraphQL result with errors and no data is a failure (`graphql` in the errors table). */
function checkGraphql(body: unknown): Failure | undefined {
  if (body === null || typeof body !== 'object') return { kind: 'invalid-response' };
  const b = body as { data?: unknown; errors?: unknown };
  if (Array.isArray(b.errors) && b.errors.length > 0 && (b.data === undefined || b.data === null)) return { kind: 'graphql' };
  if (!('data' in b) && !('errors' in b)) return { kind: 'invalid-response' };
  return undefined;
}

/**
 * A GraphQL service: queries and mutations are POSTed as JSON through the same policies as
 * REST calls (auth, rate limits, breaker, retries, errors table); subscriptions run over
 * graphql-ws (undici's WebSocket).
 */
export class GraphqlService extends RestService {
  private readonly operations = new Map<string, Operation>();
  private ws: Client | undefined;

  constructor(name: string, config: ServiceConfig, deps: ServiceDeps) {
    const endpoints: ServiceConfig['endpoints'] = {};
    for (const [k, ep] of Object.entries(config.endpoints ?? {})) endpoints[k] = { ...ep, method: 'POST', path: ep.path ?? '' };
    super(name, { ...config, endpoints }, deps);
    for (const [k, ep] of Object.entries(endpoints)) {
      if (!ep.document) throw new IxError('IX_SERVICE_CONFIG', { service: name, detail: `graphql operation "${k}" needs a document` });
      this.operations.set(k, this.compile(k, ep.document, ep.variables));
    }
  }

  private compile(key: string, document: string, variables: unknown): Operation {
    let info: ReturnType<typeof operationOf>;
    try {
      info = operationOf(document);
    } catch (err) {
      throw new IxError('IX_SERVICE_CONFIG', { service: this.name, detail: `graphql operation "${key}": ${errorMessage(err)}` });
    }
    const endpoint = this.endpoints.get(key) ?? this.adHoc(key, { method: 'POST', path: '' });
    return { endpoint, document, kind: info.kind, name: info.name, variables: variables === undefined ? undefined : compileTemplate(variables) };
  }

  operation(req: GraphqlRequest): Operation {
    if (req.operation !== undefined) {
      const op = this.operations.get(req.operation);
      if (!op) {
        throw new IxError('IX_SERVICE_UNKNOWN_ENDPOINT', { service: this.name, endpoint: req.operation, hint: ` (known: ${[...this.operations.keys()].join(', ') || 'none'})` });
      }
      return op;
    }
    if (!req.document) throw new IxError('IX_SERVICE_CONFIG', { service: this.name, detail: 'a graphql call needs an operation or a document' });
    const key = `doc:${createHash('sha1').update(req.document).digest('hex').slice(0, 12)}`;
    let op = this.operations.get(key);
    if (!op) {
      op = this.compile(key, req.document, undefined);
      this.operations.set(key, op);
    }
    return op;
  }

  /** Runs a query or mutation. */
  async execute(req: GraphqlRequest): Promise<GraphqlResult> {
    const op = this.operation(req);
    const variables = req.variables ?? (op.variables ? op.variables(req.scope ?? {}) : undefined);
    const body: Record<string, unknown> = { query: op.document };
    if (variables !== undefined) body['variables'] = variables;
    if (op.name) body['operationName'] = op.name;
    const result = await this.call(op.endpoint, { body, scope: req.scope, signal: req.signal, check: checkGraphql });
    const b = result.body as { data?: unknown; errors?: unknown[] };
    return { data: b.data ?? null, errors: b.errors ?? [], result };
  }

  /** Subscribes over graphql-ws; yields each event's data until the signal aborts or the server completes. */
  async *subscribe(req: GraphqlRequest): AsyncGenerator<unknown> {
    const op = this.operation(req);
    const variables = req.variables ?? (op.variables ? (op.variables(req.scope ?? {}) as Record<string, unknown>) : undefined);
    const client = await this.wsClient();
    const it = client.iterate({ query: op.document, ...(variables ? { variables } : {}), ...(op.name ? { operationName: op.name } : {}) });
    const onAbort = (): void => void it.return?.();
    req.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const ev of it) {
        if (ev.errors && ev.errors.length > 0 && (ev.data === undefined || ev.data === null)) {
          throw new IxError('IX_GRAPHQL_ERRORS', { call: `${this.name}.${req.operation ?? 'subscription'}`, detail: ev.errors.map((e) => e.message).join('; ') });
        }
        yield ev.data;
      }
    } finally {
      req.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async wsClient(): Promise<Client> {
    if (this.ws) return this.ws;
    const url = this.config.wsUrl ?? this.baseUrl.href.replace(/^http/, 'ws').replace(/\/$/, '');
    const probe = { method: 'GET', url: new URL(this.baseUrl), headers: {} as Record<string, string>, body: undefined };
    await this.auth.apply(probe);
    this.ws = graphqlWs().createClient({
      url,
      webSocketImpl: undici().WebSocket,
      lazy: true,
      retryAttempts: 5,
      connectionParams: Object.keys(probe.headers).length > 0 ? { headers: probe.headers, ...probe.headers } : undefined,
    });
    return this.ws;
  }

  override async close(): Promise<void> {
    if (this.ws) await this.ws.dispose();
    await super.close();
  }
}
