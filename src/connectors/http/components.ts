import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { Message } from '../../core/message.js';
import { createMessage } from '../../core/message.js';
import { errorMessage, isRetryable } from '../../core/errors.js';
import type { SinkWriteResult, SourceContext } from '../../core/component.js';
import { defineSink, defineSource, defineStep } from '../../registry/registry.js';
import { DurationType, HeadersType } from '../../registry/types.js';
import { parseSchedule, waitForNextRun } from '../../resilience/schedule.js';
import type { CallInput, CallResult, RestService } from './client.js';
import { paginate } from './pagination.js';
import { compileTemplate, readPath, type Compiled } from './template.js';

const CallFields = {
  service: Type.String({ description: 'A service declared under services:.' }),
  endpoint: Type.String({ description: 'One of its endpoints.' }),
  params: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: '{name} path parameters; values may be ${…} templates.' })),
  query: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Query parameters; values may be ${…} templates.' })),
  headers: Type.Optional(HeadersType()),
  body: Type.Optional(Type.Unknown({ description: 'Body template; by default the message payload (for methods with a body).' })),
};

function compileRecord(r: Record<string, unknown> | undefined): Compiled | undefined {
  return r ? compileTemplate(r) : undefined;
}

/** Builds the per-message call input from a component config. */
function inputBuilder(cfg: { params?: Record<string, unknown>; query?: Record<string, unknown>; headers?: Record<string, string>; body?: unknown }, svc: RestService, endpoint: string) {
  const params = compileRecord(cfg.params);
  const query = compileRecord(cfg.query);
  const headers = compileRecord(cfg.headers);
  const body = cfg.body !== undefined ? compileTemplate(cfg.body) : undefined;
  const ep = svc.endpoint(endpoint);
  const sendsBody = !['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(ep.method) && ep.config.body === undefined;
  return (msg: Message, signal: AbortSignal | undefined): CallInput => {
    const scope = { payload: msg.payload, headers: msg.headers, meta: msg.meta, id: msg.id, key: msg.key };
    const input: { -readonly [K in keyof CallInput]: CallInput[K] } = { scope };
    if (params) input.params = params(scope) as Record<string, unknown>;
    if (query) input.query = query(scope) as Record<string, unknown>;
    if (headers) input.headers = headers(scope) as Record<string, string>;
    if (body) input.body = body(scope);
    else if (sendsBody) input.body = msg.payload;
    // The message id doubles as an idempotency key for servers that honour one.
    input.headers = input.headers ? { 'idempotency-key': msg.id, ...input.headers } : { 'idempotency-key': msg.id };
    if (signal) input.signal = signal;
    return input;
  };
}

// ---------------------------------------------------------------- source

export const HttpSourceConfig = Type.Object(
  {
    service: CallFields.service,
    endpoint: CallFields.endpoint,
    params: CallFields.params,
    query: CallFields.query,
    schedule: Type.Optional(Type.String({ description: 'Cron expression (UTC), e.g. "*/5 * * * *" or with seconds "*/10 * * * * *".' })),
    interval: Type.Optional(DurationType({ description: 'Poll every interval (instead of a cron schedule).' })),
    id: Type.Optional(Type.String({ description: 'Template over the item for a stable message id, e.g. ${id}. Default: the item\'s id field, else a hash of the item.' })),
    watermark: Type.Optional(
      Type.Object(
        {
          field: Type.String({ description: 'Item field that grows (updated_at, id).' }),
          param: Type.String({ description: 'Query parameter that asks for items after the watermark (since, updated_after).' }),
        },
        { additionalProperties: false, description: 'Incremental sync: remember the largest field value seen, send it next poll.' },
      ),
    ),
    maxPages: Type.Integer({ minimum: 1, default: 10_000 }),
  },
  { additionalProperties: false },
);

interface SourceState {
  /** Pagination position to resume from (a crash mid-run). */
  page?: string;
  watermark?: string | number;
}

export function itemId(item: unknown, tpl: Compiled | undefined, prefix: string): string {
  if (tpl) return `${prefix}:${String(tpl(item))}`;
  const id = item !== null && typeof item === 'object' ? (item as Record<string, unknown>)['id'] : undefined;
  if (typeof id === 'string' || typeof id === 'number') return `${prefix}:${id}`;
  return `${prefix}:${createHash('sha1').update(JSON.stringify(item) ?? '').digest('hex')}`;
}

function greater(a: unknown, b: string | number | undefined): boolean {
  if (a === undefined || a === null) return false;
  if (b === undefined) return true;
  if (typeof a === 'number' && typeof b === 'number') return a > b;
  return String(a) > String(b);
}

export const httpSource = defineSource({
  kind: 'http',
  summary: 'Polls a service endpoint on a schedule, follows its pagination and emits one message per item.',
  description:
    'The checkpoint (pagination position and watermark) is committed only after the flow settled the page it covers. Without `schedule` or `interval` it polls once and stops.',
  config: HttpSourceConfig,
  examples: [{ title: 'Poll every 5 minutes', yaml: 'service: shop\nendpoint: listOrders\nschedule: "*/5 * * * *"\nwatermark: { field: updated_at, param: updated_after }' }],
  create(config: Static<typeof HttpSourceConfig>, ctx) {
    const svc = ctx.resources.get<RestService>('services', config.service);
    const ep = svc.endpoint(config.endpoint);
    const schedule = parseSchedule(config as { schedule?: string; interval?: string | number });
    const idTpl = config.id ? compileTemplate(config.id) : undefined;
    const params = compileRecord(config.params);
    const query = compileRecord(config.query);
    const prefix = `${config.service}.${config.endpoint}`;
    let polls = 0;

    async function pollOnce(sctx: SourceContext): Promise<void> {
      const raw = await sctx.checkpoint.get();
      const state: SourceState = raw ? (JSON.parse(raw) as SourceState) : {};
      const scope = { checkpoint: state.watermark, now: new Date(sctx.clock.now()).toISOString() };
      const q: Record<string, unknown> = { ...(query ? (query(scope) as Record<string, unknown>) : {}) };
      if (config.watermark && state.watermark !== undefined) q[config.watermark.param] = state.watermark;
      const input: CallInput = { scope, signal: sctx.signal, query: q, ...(params ? { params: params(scope) as Record<string, unknown> } : {}) };
      let watermark = state.watermark;
      for await (const page of paginate(svc, ep, input, { ...(state.page !== undefined ? { start: state.page } : {}), maxPages: config.maxPages })) {
        if (page.items.length > 0) {
          const batch = page.items.map((item) => createMessage({ id: itemId(item, idTpl, prefix), payload: item, meta: { service: config.service, endpoint: config.endpoint } }));
          for (const item of page.items) {
            const v = config.watermark ? readPath(item, config.watermark.field) : undefined;
            if (greater(v, watermark)) watermark = v as string | number;
          }
          const ack = await sctx.emit(batch);
          await ack.settled; // rejects: leave the checkpoint where it is, the page comes again
        }
        const next: SourceState = {};
        if (page.next !== undefined) next.page = page.next;
        if (watermark !== undefined) next.watermark = watermark;
        await sctx.checkpoint.set(JSON.stringify(next));
      }
    }

    return {
      async run(sctx) {
        for (;;) {
          if (sctx.signal.aborted) return;
          try {
            await pollOnce(sctx);
            polls++;
          } catch (err) {
            if (sctx.signal.aborted) return;
            sctx.logger.error({ err: errorMessage(err), service: config.service, endpoint: config.endpoint, polls }, 'http source poll failed; retrying at the next run');
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

/** How a step's response lands on the message (shared by the http and graphql steps). */
export const ResultFields = {
  result: Type.Union([Type.Literal('replace'), Type.Literal('merge'), Type.Literal('ignore')], {
    default: 'replace',
    description: 'replace: the response body becomes the payload; merge: its fields are merged into the payload; ignore: the payload stays.',
  }),
  into: Type.Optional(Type.String({ description: 'Put the response body under this payload field instead (merge into an object payload).' })),
};

/**
 * `{ ...obj, [key]: value }`, built the way V8 builds it fast: it copies a spread object slowly
 * when a key is added to the copy. A `__proto__` key (an own one, as JSON.parse makes) keeps
 * the spread, which defines it where assignment would set the prototype.
 */
function withField(obj: object, key: string, value: unknown): Record<string, unknown> {
  if (key === '__proto__' || Object.hasOwn(obj, '__proto__')) return { ...obj, [key]: value };
  const out = Object.assign({}, obj) as Record<string, unknown>;
  out[key] = value;
  return out;
}

/** Replaces, merges or nests `body` into the message payload per `result` / `into`. */
export function applyResult(msg: Message, body: unknown, config: { result?: 'replace' | 'merge' | 'ignore'; into?: string | undefined }): void {
  if (config.result === 'ignore') return;
  if (config.into) {
    const p = msg.payload;
    msg.payload = p !== null && typeof p === 'object' && !Array.isArray(p) ? withField(p, config.into, body) : { [config.into]: body };
  } else if (config.result === 'merge') {
    const a = msg.payload !== null && typeof msg.payload === 'object' ? (msg.payload as object) : {};
    const b = body !== null && typeof body === 'object' ? (body as object) : { response: body };
    msg.payload = { ...a, ...b };
  } else {
    msg.payload = body;
  }
}

export const HttpStepConfig = Type.Object(
  {
    ...CallFields,
    ...ResultFields,
    notFound: Type.Union([Type.Literal('error'), Type.Literal('filter'), Type.Literal('keep')], {
      default: 'error',
      description: 'On 404 (when the errors table says dead-letter): error dead-letters, filter drops the message (counted), keep passes it on unchanged.',
    }),
  },
  { additionalProperties: false },
);

export const httpStep = defineStep({
  kind: 'http',
  summary: 'Calls a service endpoint per message (templated path, query and body) and merges or replaces the payload with the response.',
  config: HttpStepConfig,
  examples: [{ title: 'Enrich with a customer', yaml: 'service: crm\nendpoint: getCustomer\nparams: { id: "${payload.customer_id}" }\ninto: customer' }],
  create(config: Static<typeof HttpStepConfig>, ctx) {
    const svc = ctx.resources.get<RestService>('services', config.service);
    const build = inputBuilder(config, svc, config.endpoint);
    const ep = svc.endpoint(config.endpoint);
    const notFound = (msg: Message, err: unknown): Message | null => {
      const status = (err as { params?: { status?: number } }).params?.status;
      if (status === 404 && config.notFound !== 'error' && !isRetryable(err)) return config.notFound === 'filter' ? null : msg;
      throw err;
    };
    return {
      // a promise chain rather than an async function: one promise less per message
      process(msg, sctx) {
        let call: Promise<CallResult>;
        try {
          call = svc.call(ep, build(msg, sctx.signal));
        } catch (err) {
          return Promise.reject(err as Error);
        }
        return call.then(
          (res) => {
            msg.meta['http'] = { status: res.status, attempts: res.attempts };
            applyResult(msg, res.body, config);
            return msg;
          },
          (err: unknown) => notFound(msg, err),
        );
      },
    };
  },
});

// ---------------------------------------------------------------- sink

/** Sends every message of a batch at once; failures are reported by index (the rest is not sent again). */
export async function eachMessage(batch: readonly Message[], send: (m: Message) => Promise<unknown>): Promise<void | SinkWriteResult> {
  const failed = new Map<number, unknown>();
  await Promise.all(
    batch.map(async (m, i) => {
      try {
        await send(m);
      } catch (err) {
        failed.set(i, err);
      }
    }),
  );
  if (failed.size > 0) return { failed };
}

export const HttpSinkConfig = Type.Object(
  {
    ...CallFields,
    batch: Type.Boolean({ default: false, description: 'Send the whole batch in one call, the body being the array of payloads (or the body template over { messages }).' }),
  },
  { additionalProperties: false },
);

export const httpSink = defineSink({
  kind: 'http',
  summary: 'Sends each message (or each batch) to a service endpoint.',
  description: 'A message counts as accepted when the service answered 2xx. Per-message failures are reported by index, so the rest of the batch is not sent again.',
  config: HttpSinkConfig,
  examples: [{ title: 'POST each order', yaml: 'service: erp\nendpoint: createOrder' }],
  create(config: Static<typeof HttpSinkConfig>, ctx) {
    const svc = ctx.resources.get<RestService>('services', config.service);
    const ep = svc.endpoint(config.endpoint);
    const build = inputBuilder(config, svc, config.endpoint);
    const batchBody = config.body !== undefined ? compileTemplate(config.body) : undefined;
    return {
      async write(batch, sctx): Promise<void | SinkWriteResult> {
        if (batch.length === 0) return;
        if (config.batch) {
          const messages = batch.map((m) => m.payload);
          const first = batch[0] as Message;
          const input = build(first, sctx.signal);
          await svc.call(ep, { ...input, body: batchBody ? batchBody({ messages }) : messages, headers: { ...input.headers, 'idempotency-key': batch.map((m) => m.id).join(',') } });
          return;
        }
        return eachMessage(batch, (m) => svc.call(ep, build(m, sctx.signal)));
      },
    };
  },
});
