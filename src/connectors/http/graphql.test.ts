import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import type * as GraphqlModule from 'graphql';
import type { GraphQLFieldConfig } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../../app/registry.js';
import { systemClock } from '../../core/clock.js';
import { IxError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import { engineFromYaml, type TestEngine } from '../../testing/harness.js';
import { feed, receivedBy, registerMemory, resetMemory } from '../../testing/memory.js';
import type { ServiceConfig } from './config.js';
import { GraphqlService } from './graphql-client.js';

const registry = registerMemory(createRegistry());

// graphql-ws loads graphql through Node's own resolution (CommonJS); the schema must come from
// that same module instance, not from the ESM build the test runner would pick.
const { buildSchema, graphql } = createRequire(import.meta.url)('graphql') as typeof GraphqlModule;

const schema = buildSchema(`
  type Order { id: ID!, total: Float!, customer: String }
  type PageInfo { endCursor: String, hasNextPage: Boolean! }
  type OrderPage { nodes: [Order!]!, pageInfo: PageInfo! }
  type Customer { id: ID!, name: String! }
  type Query { orders(after: String, first: Int): OrderPage!, customer(id: ID!): Customer, broken: String, partial: Customer }
  type Mutation { recordOrder(id: ID!, total: Float!, name: String): Boolean! }
  type Subscription { orderCreated(min: Float): Order! }
`);

const ORDERS = Array.from({ length: 7 }, (_v, i) => ({ id: `o${i + 1}`, total: (i + 1) * 10, customer: `c${(i % 2) + 1}` }));

/** A local GraphQL server: queries and mutations over HTTP POST, subscriptions over graphql-ws. */
class GraphqlServer {
  readonly posts: { query: string; variables: Record<string, unknown> | undefined; auth: string | undefined }[] = [];
  readonly recorded: { id: string; total: number; name: string | null }[] = [];
  private http: Server | undefined;
  private ws: WebSocketServer | undefined;
  url = '';

  async start(): Promise<this> {
    const root = {
      orders: ({ after, first }: { after?: string; first?: number }) => {
        const from = after ? ORDERS.findIndex((o) => o.id === after) + 1 : 0;
        const nodes = ORDERS.slice(from, from + (first ?? 3));
        const end = nodes.at(-1)?.id ?? null;
        return { nodes, pageInfo: { endCursor: end, hasNextPage: from + nodes.length < ORDERS.length } };
      },
      customer: ({ id }: { id: string }) => ({ id, name: `Customer ${id}` }),
      broken: () => {
        throw new Error('resolver exploded');
      },
      partial: () => ({ id: 'p1', name: null }),
      recordOrder: (args: { id: string; total: number; name?: string }) => {
        this.recorded.push({ id: args.id, total: args.total, name: args.name ?? null });
        return true;
      },
    };
    const sub = schema.getSubscriptionType()?.getFields()['orderCreated'] as unknown as GraphQLFieldConfig<unknown, unknown, { min?: number }>;
    sub.subscribe = async function* (_src, args) {
      for (const o of ORDERS.slice(0, 3)) if (o.total >= (args.min ?? 0)) yield { orderCreated: o };
    };
    this.http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { query: string; variables?: Record<string, unknown> };
        this.posts.push({ query: body.query, variables: body.variables, auth: req.headers.authorization });
        void graphql({ schema, source: body.query, rootValue: root, variableValues: body.variables ?? null }).then((result) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(result));
        });
      });
    });
    this.ws = new WebSocketServer({ server: this.http, path: '/graphql' });
    useServer({ schema }, this.ws);
    await new Promise<void>((r) => this.http?.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.http.address() as AddressInfo).port}/graphql`;
    return this;
  }

  async stop(): Promise<void> {
    for (const c of this.ws?.clients ?? []) c.terminate();
    await new Promise<void>((r) => this.ws?.close(() => r()));
    this.http?.closeAllConnections();
    await new Promise<void>((r) => this.http?.close(() => r()));
  }
}

let server: GraphqlServer;
let svc: GraphqlService | undefined;
let t: TestEngine | undefined;
beforeEach(async () => {
  resetMemory();
  server = await new GraphqlServer().start();
});
afterEach(async () => {
  await t?.close();
  await svc?.close();
  t = undefined;
  svc = undefined;
  await server.stop();
});

function service(cfg: Partial<ServiceConfig>): GraphqlService {
  return new GraphqlService(
    'gql',
    { type: 'graphql', baseUrl: server.url, timeout: '2s', connectTimeout: '1s', maxConcurrent: 8, connections: 4, endpoints: {}, ...cfg } as ServiceConfig,
    { clock: systemClock, logger: silentLogger, baseDir: '.' },
  );
}

describe('GraphqlService', () => {
  it('runs queries and mutations with variables, with the service auth', async () => {
    svc = service({
      auth: { type: 'bearer', token: 't0ken' },
      endpoints: {
        customer: { method: 'POST', path: '', document: 'query Customer($id: ID!) { customer(id: $id) { id name } }', variables: { id: '${payload.customer}' } },
        record: { method: 'POST', path: '', document: 'mutation Rec($id: ID!, $total: Float!) { recordOrder(id: $id, total: $total) }' },
      },
    });
    const q = await svc.execute({ operation: 'customer', scope: { payload: { customer: 'c9' } } });
    expect(q.data).toEqual({ customer: { id: 'c9', name: 'Customer c9' } });
    const m = await svc.execute({ operation: 'record', variables: { id: 'x1', total: 1.5 } });
    expect(m.data).toEqual({ recordOrder: true });
    expect(server.recorded).toEqual([{ id: 'x1', total: 1.5, name: null }]);
    expect(server.posts.map((p) => p.auth)).toEqual(['Bearer t0ken', 'Bearer t0ken']);
    expect(server.posts[0]?.variables).toEqual({ id: 'c9' });
  });

  it('fails errors without data through the errors table (graphql: dead-letter) and keeps partial errors', async () => {
    svc = service({});
    let err: unknown;
    try {
      await svc.execute({ document: '{ broken }' });
    } catch (e) {
      err = e;
    }
    // `broken` is nullable: graphql-js answers data { broken: null } with an error, i.e. partial
    expect(err).toBeUndefined();
    const partial = await svc.execute({ document: '{ partial { id name } }' });
    expect(partial.data).toEqual({ partial: null });
    expect(partial.errors).toHaveLength(1);
    try {
      await svc.execute({ document: '{ customer { id } }' }); // missing required argument: no data at all
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IxError);
    expect((err as IxError).code).toBe('IX_GRAPHQL_ERRORS');
    expect((err as IxError).retryable).toBe(false);
    expect((err as IxError).message).toMatch(/argument "id"/);
  });

  it('subscribes over graphql-ws and yields each event', async () => {
    svc = service({});
    const seen: unknown[] = [];
    for await (const data of svc.subscribe({ document: 'subscription($min: Float) { orderCreated(min: $min) { id total } }', variables: { min: 20 } })) seen.push(data);
    expect(seen).toEqual([{ orderCreated: { id: 'o2', total: 20 } }, { orderCreated: { id: 'o3', total: 30 } }]);
  });
});

const spec = (url: string, flows: string): string => `version: 1
services:
  shop:
    type: graphql
    baseUrl: ${url}
    timeout: 2s
    endpoints:
      orders:
        document: "query Orders($after: String) { orders(after: $after, first: 3) { nodes { id total customer } pageInfo { endCursor hasNextPage } } }"
      customer:
        document: "query Customer($id: ID!) { customer(id: $id) { name } }"
      record:
        document: "mutation Rec($id: ID!, $total: Float!, $name: String) { recordOrder(id: $id, total: $total, name: $name) }"
flows:
${flows}`;

describe('graphql source, step and sink in a flow', () => {
  it('polls Relay pages, enriches each order with a query and writes it with a mutation', async () => {
    const yaml = spec(
      server.url,
      `  sync:
    source: { graphql: { service: shop, operation: orders, items: orders.nodes, cursor: { variable: after, next: orders.pageInfo.endCursor, hasMore: orders.pageInfo.hasNextPage } } }
    steps:
      - graphql: { service: shop, operation: customer, variables: { id: "\${payload.customer}" }, into: who }
    sink:
      graphql: { service: shop, operation: record, variables: { id: "\${payload.id}", total: "\${payload.total}", name: "\${payload.who.customer.name}" } }
`,
    );
    t = await engineFromYaml(yaml, registry);
    t.engine.start();
    await t.engine.done();
    expect(t.engine.stats()['sync']).toMatchObject({ in: 7, out: 7, deadLettered: 0 });
    expect(server.recorded.map((r) => r.id).sort()).toEqual(ORDERS.map((o) => o.id));
    expect(server.recorded.find((r) => r.id === 'o2')).toEqual({ id: 'o2', total: 20, name: 'Customer c2' });
    const pages = server.posts.filter((p) => p.query.includes('Orders')).map((p) => p.variables?.['after'] ?? null);
    expect(pages).toEqual([null, 'o3', 'o6']);
  });

  it('turns a subscription into messages through the durable inbox', async () => {
    const yaml = spec(
      server.url,
      `  events:
    source: { graphql: { service: shop, document: "subscription { orderCreated { id total } }", items: orderCreated } }
    sink: { memory: { name: out } }
`,
    );
    t = await engineFromYaml(yaml, registry);
    t.engine.start();
    for (let i = 0; i < 400 && receivedBy('out').length < 3; i++) await new Promise((r) => setTimeout(r, 25));
    expect(receivedBy('out').map((m) => m.payload)).toEqual(ORDERS.slice(0, 3).map((o) => ({ id: o.id, total: o.total })));
  });

  it('dead-letters a message whose mutation the server rejects, with the reason', async () => {
    feed('src', [{ id: 'ok', total: 1 }, { id: 'bad', total: 'not a number' }]);
    const yaml = spec(
      server.url,
      `  out:
    source: { memory: { name: src } }
    errors: { retry: { attempts: 1 } }
    sink: { graphql: { service: shop, operation: record, variables: { id: "\${payload.id}", total: "\${payload.total}" } } }
`,
    );
    t = await engineFromYaml(yaml, registry);
    t.engine.start();
    await t.engine.done();
    const dead = await t.store.listDeadLetters({ flow: 'out' });
    expect(server.recorded.map((r) => r.id)).toEqual(['ok']);
    expect(dead).toHaveLength(1);
    expect(dead[0]?.reason).toMatch(/Float cannot represent/);
  });
});
