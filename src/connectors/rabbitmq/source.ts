import type * as Amqp from 'amqplib';
import type { ChannelModel, ConsumeMessage } from 'amqplib';
import type { Source, SourceContext } from '../../core/component.js';
import { createMessage } from '../../core/message.js';
import { parseDuration } from '../../core/units.js';
import {
  DeliveryCounter,
  DeliveryPump,
  backoffOf,
  childSignal,
  decodePayload,
  digestId,
  exceededError,
  redactUrl,
  runWithReconnect,
  stringHeaders,
} from '../broker-kit.js';
import type { RabbitSourceConfig } from './config.js';
import { declareSourceTopology } from './topology.js';
import { lazyModule } from '../../core/lazy-module.js';

const amqp = lazyModule<typeof Amqp>('amqplib');

/**
 * Consumes one queue with manual acks: a delivery is acked only after its batch settled,
 * nacked (requeued) after `retryDelay` when it could not settle, and past `maxDeliveries`
 * either handed to the flow as a dead letter or rejected to the queue's dead-letter exchange.
 */
export class RabbitSource implements Source {
  private conn: ChannelModel | undefined;
  private pump: DeliveryPump | undefined;
  private readonly counter = new DeliveryCounter();

  constructor(private readonly c: RabbitSourceConfig) {}

  async run(ctx: SourceContext): Promise<void> {
    const c = this.c;
    const retryDelay = parseDuration(c.retryDelay);
    const logger = ctx.logger.child({ queue: c.queue });
    await runWithReconnect({ signal: ctx.signal, clock: ctx.clock, logger, backoff: backoffOf(c), what: `rabbitmq ${redactUrl(c.url)}` }, async (healthy) => {
      const conn = await amqp().connect(c.url);
      this.conn = conn;
      const lost = childSignal(ctx.signal);
      conn.on('error', () => undefined);
      conn.on('close', () => lost.abort(new Error('connection closed')));
      try {
        const ch = await conn.createChannel();
        ch.on('error', () => undefined);
        ch.on('close', () => lost.abort(new Error('channel closed')));
        await declareSourceTopology(ch, c);
        await ch.prefetch(c.prefetch);
        const pump = new DeliveryPump(ctx, { logger });
        this.pump = pump;
        const onMessage = (raw: ConsumeMessage | null): void => {
          if (raw === null) {
            lost.abort(new Error('consumer cancelled by the broker'));
            return;
          }
          healthy();
          const props = raw.properties;
          const rawHeaders = (props.headers ?? {}) as Record<string, unknown>;
          const id =
            typeof props.messageId === 'string' && props.messageId !== ''
              ? props.messageId
              : digestId(`amqp:${c.queue}`, raw.fields.exchange, raw.fields.routingKey, raw.content, JSON.stringify(rawHeaders), String(props.timestamp ?? ''));
          const brokerCount = typeof rawHeaders['x-delivery-count'] === 'number' ? (rawHeaders['x-delivery-count'] as number) + 1 : undefined;
          const deliveries = brokerCount ?? this.counter.hit(id, raw.fields.redelivered ? 2 : 1);
          const { 'x-delivery-count': _dc, [c.keyHeader]: keyRaw, ...rest } = rawHeaders;
          const decoded = decodePayload(raw.content, c.format);
          let error = decoded.error;
          if (error === undefined && deliveries > c.maxDeliveries) {
            if (c.onExhausted === 'broker') {
              logger.warn({ id, deliveries }, 'rabbitmq: past maxDeliveries, rejected to the dead-letter exchange');
              this.counter.forget(id);
              ch.nack(raw, false, false);
              return;
            }
            error = exceededError(deliveries, c.maxDeliveries);
          }
          const msg = createMessage({
            id,
            payload: decoded.payload,
            headers: stringHeaders(rest),
            meta: {
              source: 'rabbitmq',
              queue: c.queue,
              exchange: raw.fields.exchange,
              routingKey: raw.fields.routingKey,
              redelivered: raw.fields.redelivered,
              deliveries,
              ...(props.priority !== undefined ? { priority: props.priority } : {}),
            },
            ...(keyRaw !== undefined && keyRaw !== null ? { key: Buffer.isBuffer(keyRaw) ? keyRaw.toString('utf8') : String(keyRaw) } : {}),
            ...(error !== undefined ? { error } : {}),
          });
          pump.push({
            message: msg,
            ack: () => {
              this.counter.forget(id);
              ch.ack(raw);
            },
            nack: async () => {
              await ctx.clock.sleep(retryDelay).catch(() => undefined);
              ch.nack(raw, false, true);
            },
          });
        };
        const { consumerTag } = await ch.consume(c.queue, onMessage, { noAck: false });
        logger.info({ prefetch: c.prefetch }, 'rabbitmq: consuming');
        await pump.pump(lost.signal);
        if (ctx.signal.aborted) {
          await ch.cancel(consumerTag).catch(() => undefined);
          return;
        }
        throw lost.signal.reason instanceof Error ? lost.signal.reason : new Error('connection lost');
      } finally {
        this.pump = undefined;
        this.conn = undefined;
        await conn.close().catch(() => undefined);
      }
    });
  }

  async close(): Promise<void> {
    this.pump?.abandonPending();
    await this.conn?.close().catch(() => undefined);
  }
}
