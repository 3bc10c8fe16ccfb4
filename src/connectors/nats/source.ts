import { randomUUID } from 'node:crypto';
import type * as Jetstream from '@nats-io/jetstream';
import type { JsMsg } from '@nats-io/jetstream';
import type * as Transport from '@nats-io/transport-node';
import type { Msg, MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import type { Source, SourceContext } from '../../core/component.js';
import { errorMessage } from '../../core/errors.js';
import { createMessage, type Message } from '../../core/message.js';
import { parseDuration } from '../../core/units.js';
import { DeliveryCounter, DeliveryPump, backoffOf, childSignal, decodePayload, exceededError, runWithReconnect, type Delivery } from '../broker-kit.js';
import { connectOptions, type NatsSourceConfig } from './config.js';
import { lazyModule } from '../../core/lazy-module.js';

const transport = lazyModule<typeof Transport>('@nats-io/transport-node');
const jetstreamModule = lazyModule<typeof Jetstream>('@nats-io/jetstream');

/**
 * A delivery. With JetStream, `copies` are the deliveries of one stream message that reached
 * this consumer while it was in flight here: after a consumer crash the server can hand the
 * same message over twice (once through a pull request the dead consumer left behind). They
 * travel as one delivery, acked together; the highest delivery count wins, and while the
 * delivery waits in the queue its message reflects it.
 */
interface NatsDelivery extends Delivery {
  message: Message;
  readonly copies: JsMsg[];
}

/**
 * With `jetstream`: a durable pull consumer with explicit acks. A message is acked after its
 * batch settled, nak'ed with `retryDelay` when it could not, and past `maxDeliveries` handed to
 * the flow as a dead letter and acked. While the flow works on a message the consumer marks it
 * in progress (every third of `ackWait`), so the server redelivers only a dead worker's
 * messages, however long a batch takes. The server itself does not cap deliveries: a message
 * whose dead-lettering was cut short by a crash comes back and is dead-lettered then.
 * Redeliveries are also counted in the store (the server can hand a crashed consumer's message
 * over again with its count back at 1), so a message that crashes the engine every time still
 * reaches `maxDeliveries`; the count is removed once the message is acked.
 * Without `jetstream`: a core subscription (at most once).
 */
export class NatsSource implements Source {
  private nc: NatsConnection | undefined;
  private pump: DeliveryPump<NatsDelivery> | undefined;

  constructor(private readonly c: NatsSourceConfig) {}

  async run(ctx: SourceContext): Promise<void> {
    const c = this.c;
    const logger = ctx.logger.child({ subject: c.subject, stream: c.jetstream?.stream, durable: c.jetstream?.durable });
    const retryDelay = parseDuration(c.retryDelay);
    await runWithReconnect({ signal: ctx.signal, clock: ctx.clock, logger, backoff: backoffOf(c), what: 'nats' }, async (healthy) => {
      const nc = await transport().connect({ ...connectOptions(c), reconnect: false, name: `ix:${ctx.name}` });
      this.nc = nc;
      const lost = childSignal(ctx.signal);
      void nc.closed().then(() => lost.abort(new Error('connection closed')));
      // JetStream: records the stream sequences handed to the flow before it works on them (set
      // once the consumer is known)
      let beforeEmit: ((batch: NatsDelivery[]) => Promise<void>) | undefined;
      const pump = new DeliveryPump<NatsDelivery>(ctx, {
        logger,
        ...(c.jetstream
          ? {
              beforeEmit: (batch: NatsDelivery[]) => beforeEmit?.(batch) ?? Promise.resolve(),
              keepAlive: {
                everyMs: parseDuration(c.jetstream.ackWait) / 3,
                touch: (held: NatsDelivery[]) => {
                  for (const d of held) for (const m of d.copies) m.working();
                },
              },
            }
          : {}),
      });
      this.pump = pump;
      const headersOf = (h: MsgHdrs | undefined): { headers: Record<string, string>; key?: string; msgId?: string } => {
        const headers: Record<string, string> = {};
        let key: string | undefined;
        let msgId: string | undefined;
        if (h) {
          for (const k of h.keys()) {
            const v = h.get(k);
            if (k === c.keyHeader) key = v;
            else if (k === 'Nats-Msg-Id') msgId = v;
            else headers[k] = v;
          }
        }
        return { headers, ...(key !== undefined ? { key } : {}), ...(msgId !== undefined ? { msgId } : {}) };
      };
      try {
        if (c.jetstream) {
          const j = c.jetstream;
          const jsm = await jetstreamModule().jetstreamManager(nc);
          if (j.createStream) {
            try {
              await jsm.streams.info(j.stream);
            } catch {
              await jsm.streams.add({ name: j.stream, subjects: j.createStream });
            }
          }
          const config = {
            durable_name: j.durable,
            ack_policy: jetstreamModule().AckPolicy.Explicit,
            filter_subject: c.subject,
            // unlimited: the delivery past maxDeliveries is dead-lettered and acked here; a cap at
            // the server would strand a message whose dead-lettering a crash interrupted
            max_deliver: -1,
            ack_wait: transport().nanos(parseDuration(j.ackWait)),
            max_ack_pending: Math.max(c.prefetch * 4, 1000),
            deliver_policy: j.deliverPolicy === 'new' ? jetstreamModule().DeliverPolicy.New : j.deliverPolicy === 'last' ? jetstreamModule().DeliverPolicy.Last : jetstreamModule().DeliverPolicy.All,
          };
          const existing = await jsm.consumers.info(j.stream, j.durable).catch(() => undefined);
          let created = existing?.created;
          if (!existing) {
            created = (await jsm.consumers.add(j.stream, config)).created;
          } else {
            logger.debug('nats: updating the durable consumer');
            await jsm.consumers.update(j.stream, j.durable, { ack_wait: config.ack_wait, max_deliver: config.max_deliver, max_ack_pending: config.max_ack_pending });
          }
          const js = jetstreamModule().jetstream(nc);
          const consumer = await js.consumers.get(j.stream, j.durable);
          const messages = await consumer.consume({ max_messages: c.prefetch });
          lost.signal.addEventListener('abort', () => void messages.close(), { once: true });
          // in flight here, by stream sequence; delivery counts seen in this process (the server's
          // count can restart at 1 for a copy it hands over again)
          const inFlight = new Map<number, NatsDelivery & { deliveries: number; countKey?: string }>();
          const counts = new DeliveryCounter();
          // A redelivery is counted in the store as well: nats-server can hand a crashed consumer's
          // message over again as a first delivery (its count back at 1, the consumer's delivered
          // sequence rewound). So the highest stream sequence handed to the flow is recorded
          // before the flow works on it (one write per batch, for this consumer: `created` tells
          // a consumer made again apart), and a delivery at or below it, or one the server or this
          // process counted past 1, takes one past the count the store holds for the message.
          // First deliveries, nearly all of them, read and write no count.
          const markKey = `nats-delivered:${j.stream}:${j.durable}`;
          const mark = (
            await ctx.store.getCheckpoint(markKey).catch((err: unknown) => {
              logger.warn({ err: errorMessage(err) }, 'nats: could not read the delivered mark; counting redeliveries from the server');
              return undefined;
            })
          )?.split(' ');
          const marked = mark?.[0] === (created ?? '') && Number.isFinite(Number(mark?.[1])) ? Number(mark?.[1]) : 0;
          const deliveredBefore = Math.max(marked, existing?.delivered.stream_seq ?? 0);
          let written = marked;
          let warned = false;
          beforeEmit = async (batch) => {
            let top = written;
            for (const d of batch) for (const m of d.copies) top = Math.max(top, m.seq);
            if (top <= written) return;
            try {
              await ctx.store.setCheckpoint(markKey, `${created ?? ''} ${top}`);
              written = top;
            } catch (err) {
              if (!warned) logger.warn({ err: errorMessage(err) }, 'nats: could not record the delivered mark; a crash now may cost a delivery count');
              warned = true;
            }
          };
          const countKey = (m: JsMsg): string => `nats-deliveries:${j.stream}:${j.durable}:${m.seq}:${m.info.timestampNanos}`;
          let chain: Promise<void> = Promise.resolve();
          let queued = 0;
          const toMessage = (m: JsMsg, deliveries: number): Message => {
            const h = headersOf(m.headers);
            const decoded = decodePayload(m.data, c.format);
            let error = decoded.error;
            if (error === undefined && deliveries > c.maxDeliveries) error = exceededError(deliveries, c.maxDeliveries);
            return createMessage({
              id: h.msgId ?? `${j.stream}:${m.seq}`,
              payload: decoded.payload,
              headers: h.headers,
              meta: { source: 'nats', subject: m.subject, stream: j.stream, seq: m.seq, deliveries },
              ...(h.key !== undefined ? { key: h.key } : {}),
              ...(error !== undefined ? { error } : {}),
            });
          };
          /** Raises a redelivery's count to one past what the store recorded, and records it, before the flow sees it. */
          const countDurably = async (d: NatsDelivery & { deliveries: number; countKey?: string }, m: JsMsg): Promise<void> => {
            const key = countKey(m);
            try {
              const stored = Number((await ctx.store.getCheckpoint(key)) ?? 0);
              const n = Math.max(d.deliveries, Number.isFinite(stored) ? stored + 1 : 0, 2);
              await ctx.store.setCheckpoint(key, String(n));
              d.countKey = key;
              if (n > d.deliveries) {
                d.deliveries = n;
                d.message = toMessage(d.copies[d.copies.length - 1] ?? m, n);
              }
            } catch (err) {
              logger.warn({ err: errorMessage(err), seq: m.seq }, 'nats: could not record a delivery count; counting in this process only');
            }
          };
          const reader = (async (): Promise<void> => {
            for await (const m of messages as AsyncIterable<JsMsg>) {
              healthy();
              const seq = m.seq;
              const held = inFlight.get(seq);
              if (held) {
                held.copies.push(m);
                if (m.info.deliveryCount > held.deliveries) {
                  held.deliveries = m.info.deliveryCount;
                  held.message = toMessage(m, held.deliveries);
                }
                continue;
              }
              const deliveries = counts.hit(String(seq), m.info.deliveryCount);
              const d: NatsDelivery & { deliveries: number; countKey?: string } = {
                copies: [m],
                deliveries,
                message: toMessage(m, deliveries),
                ack: () => {
                  inFlight.delete(seq);
                  counts.forget(String(seq));
                  for (const x of d.copies) x.ack();
                  if (d.countKey !== undefined) void ctx.store.deleteCheckpoint(d.countKey).catch(() => undefined);
                },
                nack: () => {
                  inFlight.delete(seq);
                  d.copies[d.copies.length - 1]?.nak(retryDelay);
                },
              };
              inFlight.set(seq, d);
              const again = deliveries > 1 || seq <= deliveredBefore;
              if (!again && queued === 0) {
                pump.push(d);
                continue;
              }
              // through the chain, so a first delivery does not overtake a redelivery being counted
              queued++;
              chain = chain
                .then(async () => {
                  if (again) await countDurably(d, m);
                  pump.push(d);
                })
                .catch((err: unknown) => logger.warn({ err: errorMessage(err) }, 'nats: could not hand a message on'))
                .finally(() => {
                  queued--;
                });
            }
          })();
          reader.then(
            () => lost.abort(new Error('consumer stopped')),
            (err: unknown) => lost.abort(err),
          );
        } else {
          const sub = nc.subscribe(c.subject, c.queue !== undefined ? { queue: c.queue } : {});
          lost.signal.addEventListener('abort', () => sub.unsubscribe(), { once: true });
          healthy();
          void (async () => {
            for await (const m of sub as AsyncIterable<Msg>) {
              const h = headersOf(m.headers);
              const decoded = decodePayload(m.data, c.format);
              pump.push({
                copies: [],
                message: createMessage({
                  id: h.msgId ?? `nats:${randomUUID()}`,
                  payload: decoded.payload,
                  headers: h.headers,
                  meta: { source: 'nats', subject: m.subject },
                  ...(h.key !== undefined ? { key: h.key } : {}),
                  ...(decoded.error !== undefined ? { error: decoded.error } : {}),
                }),
                ack: () => undefined,
                nack: () => logger.warn({ subject: m.subject }, 'nats: a core message could not settle and cannot be redelivered (use JetStream)'),
              });
            }
          })().catch((err: unknown) => lost.abort(err));
        }
        logger.info('nats: consuming');
        await pump.pump(lost.signal);
        if (ctx.signal.aborted) {
          await nc.flush().catch(() => undefined);
          return;
        }
        throw lost.signal.reason instanceof Error ? lost.signal.reason : new Error('connection lost');
      } finally {
        this.pump = undefined;
        this.nc = undefined;
        await nc.close().catch(() => undefined);
      }
    });
  }

  async close(): Promise<void> {
    this.pump?.abandonPending();
    await this.nc?.close().catch(() => undefined);
  }
}
