import { Type, type Static } from '@sinclair/typebox';
import type { ComponentContext, SinkWriteResult, SourceContext } from '../../core/component.js';
import { IxError, errorMessage } from '../../core/errors.js';
import { createMessage, type Message } from '../../core/message.js';
import { defineSink, defineSource, defineStep } from '../../registry/registry.js';
import { DurationType } from '../../registry/types.js';
import { parseSchedule, waitForNextRun } from '../../resilience/schedule.js';
import { applyResult, eachMessage, itemId, ResultFields } from './components.js';
import { GraphqlService, type GraphqlRequest } from './graphql-client.js';
import { itemsOf } from './pagination.js';
import { compileTemplate, readPath, type Compiled } from './template.js';

const OperationFields = {
  service: Type.String({ description: 'A service of type graphql declared under services:.' }),
  operation: Type.Optional(Type.String({ description: 'One of its declared operations (endpoints with a document).' })),
  document: Type.Optional(Type.String({ description: 'A GraphQL document to run instead of a declared operation.' })),
  variables: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Variables; values may be ${…} templates over the message (payload, headers, meta, id, key).' })),
};

type OperationConfig = { service: string; operation?: string | undefined; document?: string | undefined; variables?: Record<string, unknown> | undefined };

function graphqlService(config: OperationConfig, ctx: ComponentContext): GraphqlService {
  const svc = ctx.resources.get<unknown>('services', config.service);
  if (!(svc instanceof GraphqlService)) {
    throw new IxError('IX_SERVICE_CONFIG', { service: config.service, detail: 'graphql components need a service with type: graphql' });
  }
  if ((config.operation === undefined) === (config.document === undefined)) {
    throw new IxError('IX_SERVICE_CONFIG', { service: config.service, detail: 'give either operation or document' });
  }
  svc.operation(request(config)); // fails at build time on an unknown operation or a bad document
  return svc;
}

function request(config: OperationConfig): { operation: string } | { document: string } {
  return config.operation !== undefined ? { operation: config.operation } : { document: config.document as string };
}

/** Builds the per-message request: the component's variables template, else the operation's. */
function requestBuilder(config: OperationConfig): (msg: Message, signal: AbortSignal | undefined) => GraphqlRequest {
  const base = request(config);
  const vars: Compiled | undefined = config.variables ? compileTemplate(config.variables) : undefined;
  return (msg, signal) => {
    const scope = { payload: msg.payload, headers: msg.headers, meta: msg.meta, id: msg.id, key: msg.key };
    return { ...base, scope, ...(vars ? { variables: vars(scope) as Record<string, unknown> } : {}), ...(signal ? { signal } : {}) };
  };
}

// ---------------------------------------------------------------- source

export const GraphqlSourceConfig = Type.Object(
  {
    ...OperationFields,
    items: Type.Optional(Type.String({ description: 'Where the list of items is in `data`, e.g. orders.nodes. Default: `data` is one item.' })),
    id: Type.Optional(Type.String({ description: "Template over the item for a stable message id, e.g. ${id}. Default: the item's id field, else a hash of the item." })),
    schedule: Type.Optional(Type.String({ description: 'Cron expression (UTC) for queries.' })),
    interval: Type.Optional(DurationType({ description: 'Poll every interval (instead of a cron schedule).' })),
    cursor: Type.Optional(
      Type.Object(
        {
          variable: Type.String({ description: 'Variable that carries the cursor, e.g. after.' }),
          next: Type.String({ description: 'Where the next cursor is in `data`, e.g. orders.pageInfo.endCursor.' }),
          hasMore: Type.Optional(Type.String({ description: 'Where the "more pages" flag is, e.g. orders.pageInfo.hasNextPage.' })),
        },
        { additionalProperties: false, description: 'Cursor pagination (Relay style): follow `next` until it is empty, repeats, or hasMore is false.' },
      ),
    ),
    maxPages: Type.Integer({ minimum: 1, default: 10_000 }),
  },
  { additionalProperties: false },
);

export const graphqlSource = defineSource({
  kind: 'graphql',
  summary: 'Runs a GraphQL query on a schedule (following cursor pages) or a subscription over graphql-ws, and emits one message per item or event.',
  description:
    'Queries: the checkpoint (the cursor of the page being read) is committed after the flow settled each page. Subscriptions: each event is written to the durable inbox before the next is read.',
  config: GraphqlSourceConfig,
  examples: [
    { title: 'Poll orders, Relay pages', yaml: 'service: shop\noperation: orders\nitems: orders.nodes\ncursor: { variable: after, next: orders.pageInfo.endCursor, hasMore: orders.pageInfo.hasNextPage }\ninterval: 1m' },
    { title: 'Subscribe to events', yaml: 'service: shop\ndocument: "subscription { orderCreated { id total } }"\nitems: orderCreated' },
  ],
  create(config: Static<typeof GraphqlSourceConfig>, ctx) {
    const svc = graphqlService(config, ctx);
    const op = svc.operation(request(config));
    const schedule = parseSchedule(config as { schedule?: string; interval?: string | number });
    const idTpl = config.id ? compileTemplate(config.id) : undefined;
    const vars = config.variables ? compileTemplate(config.variables) : undefined;
    const prefix = `${config.service}.${config.operation ?? 'document'}`;
    const toMessages = (data: unknown): Message[] =>
      itemsOf(data, config.items).map((item) => createMessage({ id: itemId(item, idTpl, prefix), payload: item, meta: { service: config.service, operation: config.operation ?? op.name } }));

    async function pollOnce(sctx: SourceContext): Promise<void> {
      const raw = await sctx.checkpoint.get();
      let position = raw ? ((JSON.parse(raw) as { page?: string }).page ?? undefined) : undefined;
      const scope = { now: new Date(sctx.clock.now()).toISOString() };
      const base = ((vars ?? op.variables)?.(scope) ?? {}) as Record<string, unknown>;
      const seen = new Set<string>();
      for (let n = 0; n < config.maxPages; n++) {
        const variables = config.cursor && position !== undefined ? { ...base, [config.cursor.variable]: position } : base;
        const res = await svc.execute({ ...request(config), variables, scope, signal: sctx.signal });
        const batch = toMessages(res.data);
        if (batch.length > 0) await (await sctx.emit(batch)).settled;
        let next: string | undefined;
        if (config.cursor && batch.length > 0) {
          const c = readPath(res.data, config.cursor.next);
          const more = config.cursor.hasMore === undefined ? true : readPath(res.data, config.cursor.hasMore) === true;
          next = more && c !== undefined && c !== null && c !== '' ? String(c) : undefined;
          if (next !== undefined && (seen.has(next) || next === position)) next = undefined; // a repeated cursor: stop
          if (next !== undefined) seen.add(next);
        }
        await sctx.checkpoint.set(JSON.stringify(next !== undefined ? { page: next } : {}));
        if (next === undefined) return;
        position = next;
      }
    }

    async function subscribe(sctx: SourceContext): Promise<void> {
      for await (const data of svc.subscribe({ ...request(config), ...(vars ? { variables: vars({}) as Record<string, unknown> } : {}), scope: {}, signal: sctx.signal })) {
        const batch = toMessages(data);
        if (batch.length > 0) await sctx.persist(batch);
        if (sctx.signal.aborted) return;
      }
    }

    return {
      async run(sctx) {
        if (op.kind === 'subscription') return subscribe(sctx);
        for (;;) {
          if (sctx.signal.aborted) return;
          try {
            await pollOnce(sctx);
          } catch (err) {
            if (sctx.signal.aborted) return;
            sctx.logger.error({ err: errorMessage(err), service: config.service }, 'graphql source poll failed; retrying at the next run');
            if (!schedule) throw err;
          }
          if (!schedule) return;
          if (!(await waitForNextRun(schedule, sctx.clock, sctx.signal))) return;
        }
      },
    };
  },
});

// ---------------------------------------------------------------- step

export const GraphqlStepConfig = Type.Object({ ...OperationFields, ...ResultFields }, { additionalProperties: false });

export const graphqlStep = defineStep({
  kind: 'graphql',
  summary: 'Runs a GraphQL query or mutation per message (variables from the message) and merges or replaces the payload with its data.',
  description: 'Errors with no data go through the service errors table as `graphql` (dead-letter by default); errors that come with partial data are kept in meta.graphqlErrors.',
  config: GraphqlStepConfig,
  examples: [{ title: 'Enrich with a customer', yaml: 'service: crm\noperation: customer\nvariables: { id: "${payload.customer_id}" }\ninto: customer' }],
  create(config: Static<typeof GraphqlStepConfig>, ctx) {
    const svc = graphqlService(config, ctx);
    const build = requestBuilder(config);
    return {
      async process(msg, sctx) {
        const res = await svc.execute(build(msg, sctx.signal));
        msg.meta['graphql'] = { status: res.result.status, attempts: res.result.attempts };
        if (res.errors.length > 0) msg.meta['graphqlErrors'] = res.errors;
        applyResult(msg, res.data, config);
        return msg;
      },
    };
  },
});

// ---------------------------------------------------------------- sink

export const GraphqlSinkConfig = Type.Object({ ...OperationFields }, { additionalProperties: false });

export const graphqlSink = defineSink({
  kind: 'graphql',
  summary: 'Runs a GraphQL mutation per message, its variables taken from the message.',
  description: 'A message counts as accepted when the mutation returned data; failures are reported per message.',
  config: GraphqlSinkConfig,
  examples: [{ title: 'Create each order', yaml: 'service: erp\noperation: createOrder\nvariables: { input: "${payload}" }' }],
  create(config: Static<typeof GraphqlSinkConfig>, ctx) {
    const svc = graphqlService(config, ctx);
    const build = requestBuilder(config);
    return {
      write(batch, sctx): Promise<void | SinkWriteResult> {
        return eachMessage(batch, (m) => svc.execute(build(m, sctx.signal)));
      },
    };
  },
});
