/**
 * Helpers the broker connectors share (rabbitmq, nats, redis, mqtt, kafka): payload codecs,
 * destination templates, delivery counting, the reconnect loop and the batcher that turns a
 * push-style consumer into `emit` batches. Not a connector: a plain module beside index.ts.
 */
import { createHash } from 'node:crypto';
import { Type, type SchemaOptions, type Static, type TInteger, type TSchema, type TString, type TUnion } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Ack, BatchOutcome, Clock, Logger, Message, SourceContext } from '../core/index.js';
import { errorMessage, parseDuration, permanent } from '../core/index.js';
import { DurationType as UntypedDuration } from '../registry/types.js';

/** registry's DurationType with its static type (string | number). */
export const DurationType = (options: SchemaOptions = {}): TUnion<[TString, TInteger]> => UntypedDuration(options) as TUnion<[TString, TInteger]>;

// ---------------------------------------------------------------------------------------------
// Payload codecs

export const FormatType = Type.Union([Type.Literal('json'), Type.Literal('text'), Type.Literal('bytes')], {
  default: 'json',
  description:
    'How message bodies map to payloads: `json` (parse / stringify), `text` (UTF-8 string), `bytes` (a Buffer on the way in; a string or Buffer on the way out).',
});
export type Format = Static<typeof FormatType>;

export type Decoded = { payload: unknown; error?: undefined } | { payload: unknown; error: string };

/** Decodes a body. A body that does not parse keeps its text as payload and carries an error. */
export function decodePayload(body: Uint8Array, format: Format): Decoded {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (format === 'bytes') return { payload: Buffer.from(buf) };
  return decodeText(buf.toString('utf8'), format);
}

/** Decodes a body already read as UTF-8 text (`format` is not `bytes`). */
export function decodeText(text: string, format: Format): Decoded {
  if (format === 'bytes') return { payload: Buffer.from(text) };
  if (format === 'text') return { payload: text };
  if (text.length === 0) return { payload: null };
  try {
    return { payload: JSON.parse(text) as unknown };
  } catch (err) {
    return { payload: text, error: `IX_RECORD_INVALID_JSON: message body is not JSON: ${errorMessage(err)}` };
  }
}

export function encodePayload(payload: unknown, format: Format): Buffer {
  if (Buffer.isBuffer(payload)) return payload;
  if (payload instanceof Uint8Array) return Buffer.from(payload);
  if (format === 'json') return Buffer.from(JSON.stringify(payload ?? null));
  if (typeof payload === 'string') return Buffer.from(payload);
  return Buffer.from(JSON.stringify(payload ?? null));
}

/** A stable id for a broker message that carries none: a digest of what identifies it. */
export function digestId(prefix: string, ...parts: (string | Uint8Array | undefined)[]): string {
  const h = createHash('sha256');
  for (const p of parts) {
    if (p !== undefined) h.update(p);
    h.update('\0');
  }
  return `${prefix}:${h.digest('hex').slice(0, 32)}`;
}

// ---------------------------------------------------------------------------------------------
// Destination templates

/**
 * Renders `orders.${region}` against a message. `${a.b}` reads the payload; `${key}`, `${id}`,
 * `${headers.x}` and `${meta.x}` read the envelope. A missing field is a permanent error (the
 * message dead-letters with the reason). The one place to swap for transform's compileTemplate.
 */
export function compileDestination(template: string): (msg: Message) => string {
  const parts = template.split(/(\$\{[^}]*\})/g);
  if (parts.length === 1) return () => template;
  const pieces = parts.map((p) => {
    const m = /^\$\{\s*([^}]*?)\s*\}$/.exec(p);
    if (!m) return p;
    const path = m[1] as string;
    return (msg: Message): string => {
      const v = lookup(msg, path);
      if (v === undefined || v === null || typeof v === 'object') {
        throw permanent(`destination "${template}": \${${path}} is ${v === undefined || v === null ? 'missing' : 'not a scalar'} in message ${msg.id}`);
      }
      return String(v);
    };
  });
  return (msg) => pieces.map((p) => (typeof p === 'string' ? p : p(msg))).join('');
}

function lookup(msg: Message, path: string): unknown {
  const segs = path.split('.');
  const head = segs[0];
  let cur: unknown;
  if (head === 'key' && segs.length === 1) return msg.key;
  if (head === 'id' && segs.length === 1) return msg.id;
  if (head === 'headers' && segs.length === 2) return msg.headers[segs[1] as string];
  if (head === 'meta') {
    cur = msg.meta;
    segs.shift();
  } else if (head === 'payload') {
    cur = msg.payload;
    segs.shift();
  } else {
    cur = msg.payload;
  }
  for (const s of segs) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[s];
  }
  return cur;
}

/** Header-based routing: the first rule whose headers all match names the destination. */
export const HeaderRouteType = Type.Object(
  {
    when: Type.Record(Type.String(), Type.String(), { description: 'Header values that must all match.' }),
    to: Type.String({ description: 'Destination (may be a template).' }),
  },
  { additionalProperties: false },
);
export type HeaderRoute = Static<typeof HeaderRouteType>;

/** Picks a destination: header routes first, then the default template. */
export function compileRouter(defaultTemplate: string | undefined, routes: readonly HeaderRoute[] = [], what = 'destination'): (msg: Message) => string {
  const def = defaultTemplate === undefined ? undefined : compileDestination(defaultTemplate);
  const compiled = routes.map((r) => ({ when: Object.entries(r.when), to: compileDestination(r.to) }));
  return (msg) => {
    for (const r of compiled) if (r.when.every(([k, v]) => msg.headers[k] === v)) return r.to(msg);
    if (def) return def(msg);
    throw permanent(`no ${what} for message ${msg.id}: no header route matched and no default is set`);
  };
}

/** Message key for partitioning: a template, or the message's own key. */
export function compileKey(template: string | undefined): (msg: Message) => string | undefined {
  if (template === undefined) return (msg) => msg.key;
  const f = compileDestination(template);
  return (msg) => f(msg);
}

// ---------------------------------------------------------------------------------------------
// Delivery policy

export const DeliveryType = {
  maxDeliveries: Type.Integer({
    minimum: 1,
    default: 5,
    description:
      'Deliveries a message may take. A message delivered more often than this is handed to the flow with an error, which dead-letters it in the store DLQ, and is then acknowledged at the broker.',
  }),
  retryDelay: DurationType({ default: '1s', description: 'How long a message whose batch could not settle waits before it is redelivered.' }),
  reconnect: Type.Object(
    {
      initial: DurationType({ default: '200ms' }),
      max: DurationType({ default: '10s' }),
    },
    { default: {}, additionalProperties: false, description: 'Backoff between reconnect attempts when the broker goes away.' },
  ),
};

export function exceededError(deliveries: number, max: number): string {
  return `delivered ${deliveries} times, more than maxDeliveries ${max}`;
}

/**
 * Counts deliveries in this process, for brokers (or queue types) that do not count them:
 * bounded so a long run does not grow without limit.
 */
export class DeliveryCounter {
  private readonly counts = new Map<string, number>();
  constructor(private readonly limit = 100_000) {}
  /** Records one delivery and returns the count so far (at least `floor`). */
  hit(id: string, floor = 1): number {
    const n = Math.max((this.counts.get(id) ?? 0) + 1, floor);
    this.counts.delete(id);
    this.counts.set(id, n);
    if (this.counts.size > this.limit) {
      const first = this.counts.keys().next();
      if (!first.done) this.counts.delete(first.value);
    }
    return n;
  }
  forget(id: string): void {
    this.counts.delete(id);
  }
}

// ---------------------------------------------------------------------------------------------
// Reconnect loop

export interface Backoff {
  readonly initial: number;
  readonly max: number;
}

export function backoffDelay(b: Backoff, attempt: number): number {
  const exp = Math.min(b.max, b.initial * 2 ** Math.min(attempt, 20));
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

/**
 * Runs `session` until the signal aborts: a session that ends or throws (the broker went away)
 * is started again after a backoff that grows with consecutive failures and resets once a
 * session has delivered something.
 */
export async function runWithReconnect(
  opts: { signal: AbortSignal; clock: Clock; logger: Logger; backoff: Backoff; what: string },
  session: (markHealthy: () => void) => Promise<void>,
): Promise<void> {
  let attempt = 0;
  while (!opts.signal.aborted) {
    let healthy = false;
    try {
      await session(() => {
        healthy = true;
      });
    } catch (err) {
      if (opts.signal.aborted) break;
      opts.logger.warn({ err: errorMessage(err) }, `${opts.what}: connection lost`);
    }
    if (opts.signal.aborted) break;
    if (healthy) attempt = 0;
    const delay = backoffDelay(opts.backoff, attempt++);
    opts.logger.info({ delayMs: delay, attempt }, `${opts.what}: reconnecting`);
    try {
      await opts.clock.sleep(delay, opts.signal);
    } catch {
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Batching push deliveries into emits

export interface Delivery {
  readonly message: Message;
  /** Called once the flow settled the message (delivered, dead-lettered or filtered). */
  ack(): void | Promise<void>;
  /** Called when the flow could not promise the message: redeliver it (after a delay). */
  nack(): void | Promise<void>;
}

export interface DeliveryPumpOptions<D extends Delivery = Delivery> {
  /** How long a short batch waits to fill. @defaultValue 5 */
  lingerMs?: number;
  logger: Logger;
  /**
   * For brokers that redeliver a message held unacknowledged for a while (JetStream ack wait,
   * Redis pending entries reclaimed when idle): `touch` is called every `everyMs` with the
   * deliveries pushed and not yet settled, and tells the broker they are still being worked
   * on. The broker's timeout then only applies to a consumer that died.
   */
  keepAlive?: { everyMs: number; touch(held: D[]): void | Promise<void> };
  /**
   * Acknowledges a settled batch in one call (one XACK for many entries) instead of each
   * delivery's `ack`.
   */
  ackBatch?(batch: D[]): Promise<void>;
  /**
   * Called with each batch before the flow gets it, and awaited: what a source must record
   * before the flow may work on a batch (a failure is the source's to handle).
   */
  beforeEmit?(batch: D[]): Promise<void>;
}

/**
 * A bounded queue between a client's push callback and the emit loop. The client pushes
 * deliveries; `pump` emits them in batches of up to `ctx.batchSize`, and acks or nacks each
 * delivery when its batch settles. The broker's own flow control (prefetch, max in flight)
 * bounds how much waits here.
 */
export class DeliveryPump<D extends Delivery = Delivery> {
  private queue: D[] = [];
  private wake: (() => void) | undefined;
  private closed = false;
  private readonly pending = new Set<Promise<void>>();
  private abandon: (() => void) | undefined;
  private readonly abandoned = new Promise<void>((r) => {
    this.abandon = r;
  });

  constructor(
    private readonly ctx: SourceContext,
    private readonly opts: DeliveryPumpOptions<D>,
  ) {}

  /** Deliveries pushed and not yet acked or nacked. */
  private readonly held = new Set<D>();
  get unsettled(): number {
    return this.held.size;
  }
  private roomWaiters: (() => void)[] = [];

  private fullWaiter: (() => void) | undefined;

  push(d: D): void {
    if (this.closed) return;
    this.held.add(d);
    this.queue.push(d);
    this.wake?.();
    if (this.queue.length >= this.ctx.batchSize) this.fullWaiter?.();
  }

  /** For pull clients: resolves once fewer than `max` deliveries are unsettled. */
  async room(max: number, signal: AbortSignal): Promise<void> {
    while (this.unsettled >= max && !signal.aborted && !this.closed) {
      await new Promise<void>((r) => {
        const onAbort = (): void => r();
        this.roomWaiters.push(() => {
          signal.removeEventListener('abort', onAbort);
          r();
        });
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
  }

  /** The deliveries pushed and not settled yet. */
  heldDeliveries(): D[] {
    return [...this.held];
  }

  private settledOne(d: D): void {
    this.held.delete(d);
    for (const w of this.roomWaiters.splice(0)) w();
  }

  /** Stops taking deliveries; what is queued and not yet emitted is dropped (the broker redelivers it). */
  close(): void {
    this.closed = true;
    for (const d of this.queue) this.held.delete(d);
    this.queue = [];
    this.wake?.();
    for (const w of this.roomWaiters.splice(0)) w();
  }

  /** The connection is gone for good: stop waiting for settles (their acks could not reach the broker). */
  abandonPending(): void {
    this.close();
    this.abandon?.();
  }

  get size(): number {
    return this.queue.length;
  }

  /** Emits until `until` aborts or close(); then waits for the settles in flight. */
  async pump(until: AbortSignal): Promise<void> {
    const onAbort = (): void => this.wake?.();
    until.addEventListener('abort', onAbort);
    const keepAlive = this.startKeepAlive();
    try {
      while (!until.aborted && !this.closed) {
        if (this.queue.length === 0) {
          await new Promise<void>((r) => {
            this.wake = r;
          });
          this.wake = undefined;
          continue;
        }
        // fill the batch, or wait at most `lingerMs` for more: batches of one cost a round trip each
        const linger = this.opts.lingerMs ?? 5;
        if (linger > 0 && this.queue.length < this.ctx.batchSize) {
          await new Promise<void>((r) => {
            const t = setTimeout(r, linger);
            this.fullWaiter = () => {
              clearTimeout(t);
              r();
            };
          });
          this.fullWaiter = undefined;
          if (until.aborted || this.closed) break;
        }
        const batch = this.queue.splice(0, this.ctx.batchSize);
        const beforeEmit = this.opts.beforeEmit;
        if (beforeEmit) await safe(() => beforeEmit(batch));
        let ack: Ack;
        try {
          ack = await this.ctx.emit(batch.map((d) => d.message));
        } catch (err) {
          this.opts.logger.warn({ err: errorMessage(err) }, 'emit failed; the batch stays at the broker');
          for (const d of batch) void settle(d, 'nack').finally(() => this.settledOne(d));
          continue;
        }
        const p = ack.settled.then(
          async (outcome: BatchOutcome) => {
            void outcome;
            const ackBatch = this.opts.ackBatch;
            if (ackBatch) {
              await safe(() => ackBatch(batch));
              for (const d of batch) this.settledOne(d);
              return;
            }
            // started in order (brokers that want acks in delivery order get them), awaited together
            await Promise.all(batch.map((d) => settle(d, 'ack').finally(() => this.settledOne(d))));
          },
          async (err: unknown) => {
            this.opts.logger.warn({ err: errorMessage(err), count: batch.length }, 'batch did not settle; redelivering');
            await Promise.all(batch.map((d) => settle(d, 'nack').finally(() => this.settledOne(d))));
          },
        );
        this.pending.add(p);
        void p.finally(() => this.pending.delete(p));
      }
      until.removeEventListener('abort', onAbort);
      await this.drain();
    } finally {
      until.removeEventListener('abort', onAbort);
      if (keepAlive) clearInterval(keepAlive);
    }
  }

  /** Touches the held deliveries every `keepAlive.everyMs` (one touch at a time), until pump() ends. */
  private startKeepAlive(): NodeJS.Timeout | undefined {
    const k = this.opts.keepAlive;
    if (!k) return undefined;
    let busy = false;
    const timer = setInterval(() => {
      if (busy || this.held.size === 0) return;
      busy = true;
      void safe(() => k.touch([...this.held])).finally(() => {
        busy = false;
      });
    }, Math.max(50, k.everyMs));
    timer.unref();
    return timer;
  }

  /** Waits until every emitted batch has settled and been acked or nacked. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) {
      const r = await Promise.race([Promise.allSettled([...this.pending]).then(() => false), this.abandoned.then(() => true)]);
      if (r) return;
    }
  }
}

/** d.ack() or d.nack(), called as a method (deliveries may be class instances), errors swallowed as by `safe`. */
async function settle(d: Delivery, op: 'ack' | 'nack'): Promise<void> {
  try {
    await d[op]();
  } catch {
    // the channel is gone: the broker redelivers what was not acknowledged
  }
}

async function safe(f: () => void | Promise<void>): Promise<void> {
  try {
    await f();
  } catch {
    // the channel is gone: the broker redelivers what was not acknowledged
  }
}

/** An AbortSignal that aborts with `parent` or when `abort()` is called. */
export function childSignal(parent: AbortSignal): AbortController {
  const c = new AbortController();
  if (parent.aborted) c.abort(parent.reason);
  else parent.addEventListener('abort', () => c.abort(parent.reason), { once: true });
  return c;
}

/** Headers from a broker's table: strings kept, others stringified, binary decoded as UTF-8. */
export function stringHeaders(h: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || v === null) continue;
    if (typeof v === 'string') out[k] = v;
    else if (Buffer.isBuffer(v)) out[k] = v.toString('utf8');
    else if (typeof v === 'object') out[k] = JSON.stringify(v);
    else out[k] = String(v);
  }
  return out;
}

/** A URL with any password replaced, for logs and errors. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):([^@]*)@/, '//$1:***@');
}

/** `host:port` of a URL like amqp://u:p@host:port/vhost (for connecting through a proxy in tests). */
export function replaceHostPort(url: string, hostPort: string): string {
  return url.replace(/^(\w+:\/\/(?:[^@/]*@)?)[^/?#]+/, `$1${hostPort}`);
}

/** The config with every default applied (nested ones too), for factories and tests. */
export function withDefaults<S extends TSchema>(schema: S, raw: unknown): Static<S> {
  return Value.Default(schema, structuredClone(raw ?? {})) as Static<S>;
}

export function backoffOf(c: { reconnect: { initial: string | number; max: string | number } }): Backoff {
  return { initial: parseDuration(c.reconnect.initial), max: parseDuration(c.reconnect.max) };
}
