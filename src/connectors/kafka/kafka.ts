import type kafkajsModule from 'kafkajs';
import { lazyModule } from '../../core/lazy-module.js';
import type { Consumer, EachBatchPayload, KafkaConfig, Producer, SASLOptions } from 'kafkajs';
import type { Sink, SinkContext, SinkWriteResult, Source, SourceContext } from '../../core/component.js';
import { IxError, errorMessage } from '../../core/errors.js';
import { createMessage, type Message } from '../../core/message.js';
import { parseDuration } from '../../core/units.js';
import { DeliveryCounter, backoffOf, childSignal, compileKey, compileRouter, decodePayload, encodePayload, exceededError, runWithReconnect, stringHeaders } from '../broker-kit.js';
import type { KafkaSinkConfig, KafkaSourceConfig } from './config.js';

const kafkajs = lazyModule<typeof kafkajsModule>('kafkajs');


function kafkaConfig(c: KafkaSourceConfig | KafkaSinkConfig): KafkaConfig {
  const cfg: KafkaConfig = { clientId: c.clientId, brokers: c.brokers, ssl: c.ssl, logLevel: kafkajs().logLevel.NOTHING, retry: { retries: 5 } };
  if (c.sasl) cfg.sasl = { mechanism: c.sasl.mechanism, username: c.sasl.username, password: c.sasl.password } as SASLOptions;
  return cfg;
}

/**
 * A consumer-group member. Each partition batch is emitted and its offset committed only after
 * the batch settled; a batch that cannot settle is consumed again from its first offset after
 * `retryDelay`; a message seen more than `maxDeliveries` times (counted in this process: Kafka
 * keeps no delivery count) goes to the DLQ. Partition order is kept: one batch per partition
 * at a time.
 */
export class KafkaSource implements Source {
  private consumer: Consumer | undefined;
  private readonly counter = new DeliveryCounter();
  constructor(private readonly c: KafkaSourceConfig) {}

  async run(ctx: SourceContext): Promise<void> {
    const c = this.c;
    const logger = ctx.logger.child({ topics: c.topics, groupId: c.groupId });
    const retryDelay = parseDuration(c.retryDelay);
    await runWithReconnect({ signal: ctx.signal, clock: ctx.clock, logger, backoff: backoffOf(c), what: 'kafka' }, async (healthy) => {
      const lost = childSignal(ctx.signal);
      const consumer = new (kafkajs().Kafka)(kafkaConfig(c)).consumer({ groupId: c.groupId, sessionTimeout: parseDuration(c.sessionTimeout), retry: { retries: 3 } });
      this.consumer = consumer;
      consumer.on(consumer.events.CRASH, (e) => lost.abort(new Error(`consumer crashed: ${errorMessage(e.payload.error)}`)));
      try {
        await consumer.connect();
        await consumer.subscribe({ topics: c.topics, fromBeginning: c.fromBeginning });
        await consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          eachBatch: async ({ batch, heartbeat, isRunning, isStale }: EachBatchPayload) => {
            healthy();
            const { topic, partition } = batch;
            for (let i = 0; i < batch.messages.length && isRunning() && !isStale() && !lost.signal.aborted; i += ctx.batchSize) {
              const slice = batch.messages.slice(i, i + ctx.batchSize);
              const msgs = slice.map((km) => {
                const id = `${topic}:${partition}:${km.offset}`;
                const deliveries = this.counter.hit(id);
                const decoded = km.value === null ? { payload: null } : decodePayload(km.value, c.format);
                let error = decoded.error;
                if (error === undefined && deliveries > c.maxDeliveries) error = exceededError(deliveries, c.maxDeliveries);
                return createMessage({
                  id,
                  payload: decoded.payload,
                  headers: stringHeaders(km.headers as Record<string, unknown> | undefined),
                  meta: { source: 'kafka', topic, partition, offset: km.offset, deliveries },
                  ...(km.key !== null && km.key !== undefined ? { key: km.key.toString('utf8') } : {}),
                  ...(error !== undefined ? { error } : {}),
                });
              });
              const ack = await ctx.emit(msgs);
              try {
                await ack.settled;
              } catch (err) {
                logger.warn({ err: errorMessage(err), topic, partition }, 'kafka: batch did not settle; consuming it again');
                await ctx.clock.sleep(retryDelay, lost.signal).catch(() => undefined);
                consumer.seek({ topic, partition, offset: (slice[0] as { offset: string }).offset });
                return;
              }
              const last = slice[slice.length - 1] as { offset: string };
              await consumer.commitOffsets([{ topic, partition, offset: (BigInt(last.offset) + 1n).toString() }]);
              for (const m of msgs) this.counter.forget(m.id);
              await heartbeat();
            }
          },
        });
        await new Promise<void>((resolve) => lost.signal.addEventListener('abort', () => resolve(), { once: true }));
        if (!ctx.signal.aborted) throw lost.signal.reason instanceof Error ? lost.signal.reason : new Error('consumer stopped');
      } finally {
        this.consumer = undefined;
        await consumer.disconnect().catch(() => undefined);
      }
    });
  }

  async close(): Promise<void> {
    await this.consumer?.disconnect().catch(() => undefined);
  }
}

/**
 * An idempotent producer: a write resolves once every partition leader and its in-sync
 * replicas have the messages (acks: all). The message id travels as the `ix-id` header; the key
 * picks the partition, so messages with one key keep their order.
 */
export class KafkaSink implements Sink {
  private producer: Producer | undefined;
  private connecting: Promise<Producer> | undefined;
  private closed = false;
  private readonly route: (m: Message) => string;
  private readonly key: (m: Message) => string | undefined;

  constructor(private readonly c: KafkaSinkConfig) {
    this.route = compileRouter(c.topic, c.routes, 'topic');
    this.key = compileKey(c.key);
  }

  private conn(): Promise<Producer> {
    if (this.closed) return Promise.reject(new IxError('IX_SINK_FAILED', { sink: 'kafka', detail: 'sink is closed' }, { retryable: false }));
    if (this.producer) return Promise.resolve(this.producer);
    this.connecting ??= (async () => {
      const p = new (kafkajs().Kafka)(kafkaConfig(this.c)).producer({ idempotent: this.c.idempotent, maxInFlightRequests: this.c.idempotent ? 1 : 5 });
      try {
        await p.connect();
        p.on(p.events.DISCONNECT, () => {
          if (this.producer === p) this.producer = undefined;
        });
        this.producer = p;
        return p;
      } catch (err) {
        throw new IxError('IX_SINK_FAILED', { sink: 'kafka', detail: `cannot connect: ${errorMessage(err)}` }, { cause: err });
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  async write(batch: Message[], _ctx?: SinkContext): Promise<void | SinkWriteResult> {
    if (batch.length === 0) return;
    const p = await this.conn();
    const failed = new Map<number, unknown>();
    const byTopic = new Map<string, { key?: string; value: Buffer; headers: Record<string, string> }[]>();
    batch.forEach((m, i) => {
      try {
        const topic = this.route(m);
        const key = this.key(m);
        const list = byTopic.get(topic) ?? [];
        list.push({ ...(key !== undefined ? { key } : {}), value: encodePayload(m.payload, this.c.format), headers: { ...m.headers, 'ix-id': m.id } });
        byTopic.set(topic, list);
      } catch (err) {
        failed.set(i, err);
      }
    });
    if (byTopic.size > 0) {
      try {
        await p.sendBatch({
          acks: -1,
          timeout: parseDuration(this.c.timeout),
          compression: this.c.compression === 'gzip' ? kafkajs().CompressionTypes.GZIP : kafkajs().CompressionTypes.None,
          topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
        });
      } catch (err) {
        throw new IxError('IX_SINK_FAILED', { sink: 'kafka', detail: errorMessage(err) }, { cause: err });
      }
    }
    return failed.size > 0 ? { failed } : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    const p = this.producer;
    this.producer = undefined;
    await p?.disconnect().catch(() => undefined);
  }
}
