import { randomUUID } from 'node:crypto';
import { connect, type ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMessage } from '../../core/message.js';
import { serviceAvailable } from '../../testing/services.js';
import { sinkContract, testSinkContext, type ReadBack } from '../../testing/sink-contract.js';
import { sourceContract } from '../../testing/source-contract.js';
import { TestSourceContext } from '../../testing/test-source-context.js';
import { withDefaults } from '../broker-kit.js';
import { RabbitSinkConfig, RabbitSourceConfig } from './config.js';
import { RabbitSink } from './sink.js';
import { RabbitSource } from './source.js';

const URL = 'amqp://guest:guest@127.0.0.1:5672';
const up = serviceAvailable('rabbitmq');
const uid = (): string => `ix-test-${randomUUID().slice(0, 8)}`;

describe.skipIf(!up)('rabbitmq', () => {
  let admin: ChannelModel;
  beforeAll(async () => {
    admin = await connect(URL);
  });
  afterAll(async () => {
    await admin?.close();
  });

  async function drainQueue(queue: string): Promise<ReadBack[]> {
    const ch = await admin.createChannel();
    const out: ReadBack[] = [];
    for (;;) {
      const m = await ch.get(queue, { noAck: true });
      if (m === false) break;
      const h = { ...(m.properties.headers ?? {}) } as Record<string, string>;
      out.push({ id: m.properties.messageId as string, payload: JSON.parse(m.content.toString()), headers: h, key: h['ix-key'], destination: m.fields.routingKey });
    }
    await ch.close();
    return out;
  }

  sourceContract(
    'rabbitmq',
    async () => {
      const queue = uid();
      const ch = await admin.createChannel();
      await ch.assertQueue(queue, { durable: true });
      return {
        createSource: (o) =>
          new RabbitSource(
            withDefaults(RabbitSourceConfig, {
              url: o.via ? `amqp://guest:guest@${o.via}` : URL,
              queue,
              maxDeliveries: o.maxDeliveries,
              retryDelay: o.retryDelay,
              prefetch: 50,
              reconnect: { initial: 100, max: 1000 },
            }),
          ),
        publish: async (recs) => {
          for (const r of recs) {
            ch.sendToQueue(queue, Buffer.from(JSON.stringify(r.payload)), {
              persistent: true,
              messageId: `m-${queue}-${r.n}`,
              headers: { ...r.headers, ...(r.key ? { 'ix-key': r.key } : {}) },
            });
          }
        },
        publishRaw: async (body) => {
          ch.sendToQueue(queue, body, { messageId: `raw-${randomUUID()}` });
        },
        cleanup: async () => {
          await ch.deleteQueue(queue).catch(() => undefined);
          await ch.close().catch(() => undefined);
        },
      };
    },
    { redelivers: true, brokerAddress: '127.0.0.1:5672' },
  );

  const sinkQueue = { name: '' };
  sinkContract(
    'rabbitmq',
    async () => {
      sinkQueue.name = uid();
      return {
        createSink: () => new RabbitSink(withDefaults(RabbitSinkConfig, { url: URL, queue: { name: sinkQueue.name } })),
        read: async () => {
          acc.push(...(await drainQueue(sinkQueue.name)));
          return acc;
        },
        cleanup: async () => {
          acc.length = 0;
          const ch = await admin.createChannel();
          await ch.deleteQueue(sinkQueue.name).catch(() => undefined);
          await ch.close().catch(() => undefined);
        },
      };
    },
    { keepsIds: true, keepsHeaders: true, dedupes: false },
  );
  const acc: ReadBack[] = [];

  it('routes by templated routing key and by header on a topic exchange', async () => {
    const ex = uid();
    const [eu, us, urgent] = [uid(), uid(), uid()];
    const ch = await admin.createChannel();
    await ch.assertExchange(ex, 'topic', { durable: false, autoDelete: false });
    for (const [q, key] of [
      [eu, 'orders.eu'],
      [us, 'orders.us'],
      [urgent, 'orders.urgent'],
    ] as const) {
      await ch.assertQueue(q as string, { durable: false });
      await ch.bindQueue(q as string, ex, key);
    }
    const sink = new RabbitSink(
      withDefaults(RabbitSinkConfig, { url: URL, exchange: ex, routingKey: 'orders.${region}', routes: [{ when: { priority: 'high' }, to: 'orders.urgent' }] }),
    );
    const res = await sink.write(
      [
        createMessage({ id: 'a', payload: { region: 'eu' } }),
        createMessage({ id: 'b', payload: { region: 'us' } }),
        createMessage({ id: 'c', payload: { region: 'eu' }, headers: { priority: 'high' } }),
        createMessage({ id: 'd', payload: { other: 1 } }),
      ],
      testSinkContext(),
    );
    expect(res && [...res.failed.keys()]).toEqual([3]);
    expect(String(res && res.failed.get(3))).toMatch(/\$\{region\} is missing/);
    await sink.close();
    await new Promise((r) => setTimeout(r, 200));
    expect((await drainQueue(eu as string)).map((m) => m.id)).toEqual(['a']);
    expect((await drainQueue(us as string)).map((m) => m.id)).toEqual(['b']);
    expect((await drainQueue(urgent as string)).map((m) => m.id)).toEqual(['c']);
    for (const q of [eu, us, urgent]) await ch.deleteQueue(q as string);
    await ch.deleteExchange(ex);
    await ch.close();
  });

  it('consumes through fanout and headers exchange bindings it declares', async () => {
    const queue = uid();
    const fan = uid();
    const hdr = uid();
    const ctx = new TestSourceContext();
    const src = new RabbitSource(
      withDefaults(RabbitSourceConfig, {
        url: URL,
        queue,
        declare: { durable: false },
        bindings: [
          { exchange: { name: fan, type: 'fanout', durable: false } },
          { exchange: { name: hdr, type: 'headers', durable: false }, headers: { kind: 'order' }, match: 'all' },
        ],
      }),
    );
    const done = src.run(ctx);
    await new Promise((r) => setTimeout(r, 500));
    const ch = await admin.createChannel();
    ch.publish(fan, 'whatever', Buffer.from('{"via":"fanout"}'), { messageId: 'f1' });
    ch.publish(hdr, '', Buffer.from('{"via":"headers"}'), { messageId: 'h1', headers: { kind: 'order' } });
    ch.publish(hdr, '', Buffer.from('{"via":"headers-miss"}'), { messageId: 'h2', headers: { kind: 'refund' } });
    await ctx.waitFor(() => ctx.delivered.size >= 2, 10_000, 'two deliveries');
    await new Promise((r) => setTimeout(r, 300));
    expect([...ctx.delivered.keys()].sort()).toEqual(['f1', 'h1']);
    ctx.stop();
    await done;
    await ch.deleteQueue(queue);
    await ch.deleteExchange(fan);
    await ch.deleteExchange(hdr);
    await ch.close();
  });

  it('publishes with priority and TTL, and rejects past maxDeliveries to the dead-letter exchange (onExhausted: broker)', async () => {
    const queue = uid();
    const dlx = uid();
    const dlq = uid();
    const ch = await admin.createChannel();
    await ch.assertExchange(dlx, 'fanout', { durable: false });
    await ch.assertQueue(dlq, { durable: false });
    await ch.bindQueue(dlq, dlx, '');
    const sink = new RabbitSink(
      withDefaults(RabbitSinkConfig, {
        url: URL,
        queue: { name: queue, declare: { maxPriority: 9, deadLetterExchange: dlx, type: 'classic', durable: true } },
        priority: '${p}',
        ttl: '1h',
      }),
    );
    await sink.write(
      [createMessage({ id: 'low', payload: { p: 1 } }), createMessage({ id: 'high', payload: { p: 9 } }), createMessage({ id: 'poison', payload: { p: 5 } })],
      testSinkContext(),
    );
    await sink.close();
    const peek = await ch.get(queue, { noAck: false });
    expect(peek && peek.properties.messageId).toBe('high');
    expect(peek && peek.properties.expiration).toBe('3600000');
    if (peek) ch.nack(peek, false, true);
    const ctx = new TestSourceContext({ decide: (m) => (m.id === 'poison' ? 'reject' : 'deliver'), batchSize: 1 });
    const src = new RabbitSource(
      withDefaults(RabbitSourceConfig, {
        url: URL,
        queue,
        declare: { maxPriority: 9, deadLetterExchange: dlx },
        maxDeliveries: 2,
        retryDelay: 50,
        onExhausted: 'broker',
      }),
    );
    const done = src.run(ctx);
    await ctx.waitFor(() => ctx.delivered.size >= 2, 10_000);
    let dead: ReadBack[] = [];
    const deadline = Date.now() + 10_000;
    while (dead.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      dead = await drainQueue(dlq);
    }
    expect(dead.map((d) => d.id)).toEqual(['poison']);
    expect(ctx.emitted.filter((m) => m.id === 'poison').length).toBe(2);
    ctx.stop();
    await done;
    await ch.deleteQueue(queue);
    await ch.deleteQueue(dlq);
    await ch.deleteExchange(dlx);
    await ch.close();
  });
});
