import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type ConsumerInfo, type DeliveryInfo, type JetStreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createMessage } from '../../core/message.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import { serviceAvailable } from '../../testing/services.js';
import { sinkContract, testSinkContext, type ReadBack } from '../../testing/sink-contract.js';
import { sourceContract } from '../../testing/source-contract.js';
import { TestSourceContext } from '../../testing/test-source-context.js';
import { withDefaults } from '../broker-kit.js';
import { NatsSinkConfig, NatsSourceConfig } from './config.js';
import { NatsSink } from './sink.js';
import { NatsSource } from './source.js';

const up = serviceAvailable('nats');
const uid = (): string => `ix_test_${randomUUID().slice(0, 8)}`;

describe.skipIf(!up)('nats', () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  beforeAll(async () => {
    nc = await connect({ servers: '127.0.0.1:4222' });
    jsm = await jetstreamManager(nc);
  });
  afterAll(async () => {
    await nc?.close();
  });

  async function readStream(stream: string): Promise<ReadBack[]> {
    const info = await jsm.streams.info(stream);
    const out: ReadBack[] = [];
    const js = jetstream(nc);
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
      if (!m) continue;
      const h: Record<string, string> = {};
      for (const k of m.header?.keys() ?? []) h[k] = m.header.get(k);
      out.push({ id: h['Nats-Msg-Id'] as string, key: h['ix-key'] as string, headers: h, payload: JSON.parse(new TextDecoder().decode(m.data)), destination: m.subject });
    }
    void js;
    return out;
  }

  sourceContract(
    'nats-jetstream',
    async () => {
      const name = uid();
      await jsm.streams.add({ name, subjects: [`${name}.>`] });
      const js = jetstream(nc);
      return {
        createSource: (o) =>
          new NatsSource(
            withDefaults(NatsSourceConfig, {
              servers: o.via ?? '127.0.0.1:4222',
              subject: `${name}.>`,
              jetstream: { stream: name, durable: 'ix', ackWait: '2s' },
              maxDeliveries: o.maxDeliveries,
              retryDelay: o.retryDelay,
              reconnect: { initial: 100, max: 1000 },
            }),
          ),
        publish: async (recs) => {
          await Promise.all(
            recs.map((r) => {
              const h = headers();
              for (const [k, v] of Object.entries(r.headers ?? {})) h.set(k, v);
              if (r.key) h.set('ix-key', r.key);
              return js.publish(`${name}.${r.payload['region'] as string}`, JSON.stringify(r.payload), { headers: h, msgID: `m-${name}-${r.n}` });
            }),
          );
        },
        publishRaw: async (body) => {
          await js.publish(`${name}.raw`, body);
        },
        cleanup: async () => {
          await jsm.streams.delete(name).catch(() => undefined);
        },
      };
    },
    { redelivers: true, brokerAddress: '127.0.0.1:4222', redeliveryTimeoutMs: 2000 },
  );

  sourceContract(
    'nats-core',
    async () => {
      const name = uid();
      return {
        createSource: () => new NatsSource(withDefaults(NatsSourceConfig, { subject: `${name}.*` })),
        publish: async (recs) => {
          for (const r of recs) {
            const h = headers();
            for (const [k, v] of Object.entries(r.headers ?? {})) h.set(k, v);
            nc.publish(`${name}.${r.payload['region'] as string}`, JSON.stringify(r.payload), { headers: h });
          }
          await nc.flush();
        },
        publishRaw: async (body) => {
          nc.publish(`${name}.raw`, body);
          await nc.flush();
        },
        cleanup: async () => undefined,
      };
    },
    { redelivers: false, warmupMs: 300 },
  );

  let sinkStream = '';
  sinkContract(
    'nats-jetstream',
    async () => {
      sinkStream = uid();
      await jsm.streams.add({ name: sinkStream, subjects: [`${sinkStream}.>`] });
      return {
        createSink: () => new NatsSink(withDefaults(NatsSinkConfig, { subject: `${sinkStream}.out`, jetstream: true })),
        read: () => readStream(sinkStream),
        cleanup: async () => {
          await jsm.streams.delete(sinkStream).catch(() => undefined);
        },
      };
    },
    { keepsIds: true, keepsHeaders: true, dedupes: true },
  );

  it('routes to templated and header-picked subjects; a wildcard core subscription sees them', async () => {
    const base = uid();
    const ctx = new TestSourceContext();
    const src = new NatsSource(withDefaults(NatsSourceConfig, { subject: `${base}.>` }));
    const done = src.run(ctx);
    await new Promise((r) => setTimeout(r, 300));
    const sink = new NatsSink(withDefaults(NatsSinkConfig, { subject: `${base}.orders.\${region}`, routes: [{ when: { priority: 'high' }, to: `${base}.urgent` }] }));
    await sink.write(
      [
        createMessage({ id: 'a', payload: { region: 'eu' }, key: 'k1' }),
        createMessage({ id: 'b', payload: { region: 'us' } }),
        createMessage({ id: 'c', payload: { region: 'eu' }, headers: { priority: 'high' } }),
      ],
      testSinkContext(),
    );
    await ctx.waitFor(() => ctx.delivered.size >= 3, 5000);
    const bySubject = Object.fromEntries([...ctx.delivered.values()].map((m) => [m.id, m.meta['subject']]));
    expect(bySubject).toEqual({ a: `${base}.orders.eu`, b: `${base}.orders.us`, c: `${base}.urgent` });
    expect(ctx.delivered.get('a')?.key).toBe('k1');
    await sink.close();
    ctx.stop();
    await done;
  });

  it('counts redeliveries in the store: a message that crashes the engine is dead-lettered even when the server hands it over as a first delivery', async () => {
    const name = uid();
    await jsm.streams.add({ name, subjects: [`${name}.>`] });
    const js = jetstream(nc);
    await js.publish(`${name}.x`, JSON.stringify({ n: 1 }), { msgID: `${name}-1` });
    // As nats-server 2.9.10 can do after a consumer was SIGKILLed: every delivery reads as the first...
    const probe = await (await js.consumers.get(name)).next({ expires: 2000 });
    const proto = Object.getPrototypeOf(probe) as object;
    const info = Object.getOwnPropertyDescriptor(proto, 'info') as PropertyDescriptor;
    const firstEveryTime = function (this: unknown): DeliveryInfo {
      return { ...(info.get?.call(this) as DeliveryInfo), deliveryCount: 1, redelivered: false };
    };
    Object.defineProperty(proto, 'info', { ...info, get: firstEveryTime });
    // ...and rewinds the consumer's delivered sequence
    const consumers = Object.getPrototypeOf(jsm.consumers) as { info: (stream: string, name: string) => Promise<ConsumerInfo> };
    const consumerInfo = Object.getOwnPropertyDescriptor(consumers, 'info') as PropertyDescriptor;
    const rewound = async function (this: unknown, stream: string, name: string): Promise<ConsumerInfo> {
      const i = (await (consumerInfo.value as typeof consumers.info).call(this, stream, name)) as ConsumerInfo;
      return { ...i, delivered: { ...i.delivered, stream_seq: 0 } };
    };
    Object.defineProperty(consumers, 'info', { ...consumerInfo, value: rewound });
    const dir = mkdtempSync(join(tmpdir(), 'ix-nats-counts-'));
    const store = new SqliteStore(join(dir, 'state.db'));
    // the delivery count the source keeps in the store for the message (stream, durable, seq, time)
    const counted = async (): Promise<number> => Number((await store.getCheckpoint(`nats-deliveries:${name}:ix:1:${String(probe?.info.timestampNanos)}`)) ?? 0);
    const run = (decide: 'hang' | 'deliver'): { ctx: TestSourceContext; src: NatsSource; done: Promise<void> } => {
      const ctx = new TestSourceContext({ store, decide: () => decide });
      const src = new NatsSource(
        withDefaults(NatsSourceConfig, {
          subject: `${name}.>`,
          jetstream: { stream: name, durable: 'ix', ackWait: '1s' },
          maxDeliveries: 2,
          reconnect: { initial: 100, max: 1000 },
        }),
      );
      return { ctx, src, done: src.run(ctx) };
    };
    try {
      // each run takes the message and dies before it settled
      const seen: unknown[] = [];
      for (let i = 0; i < 2; i++) {
        const r = run('hang');
        await r.ctx.waitFor(() => r.ctx.emitted.length > 0, 15_000, `delivery ${i + 1}`);
        seen.push(r.ctx.emitted[0]?.meta['deliveries']);
        r.ctx.stop();
        r.done.catch(() => undefined);
        await r.src.close();
      }
      expect(seen).toEqual([1, 2]);
      expect(await counted()).toBe(2);
      const last = run('deliver');
      await last.ctx.waitFor(() => last.ctx.deadLettered.size === 1, 15_000, 'the dead letter');
      expect([...last.ctx.deadLettered.values()][0]?.error).toMatch(/delivered 3 times, more than maxDeliveries 2/);
      expect(last.ctx.delivered.size).toBe(0);
      // acked once dead-lettered, and its count is gone from the store
      await vi.waitFor(async () => expect(await counted()).toBe(0), { timeout: 5000 });
      last.ctx.stop();
      await last.done;
      const again = run('deliver');
      await new Promise((r) => setTimeout(r, 1500));
      expect(again.ctx.emitted.length).toBe(0);
      again.ctx.stop();
      await again.done;
    } finally {
      Object.defineProperty(proto, 'info', info);
      Object.defineProperty(consumers, 'info', consumerInfo);
      await store.close();
      rmSync(dir, { recursive: true, force: true });
      await jsm.streams.delete(name).catch(() => undefined);
    }
  }, 60_000);

  it('keeps no delivery counts for first deliveries: one delivered mark per batch', async () => {
    const name = uid();
    await jsm.streams.add({ name, subjects: [`${name}.>`] });
    const dir = mkdtempSync(join(tmpdir(), 'ix-nats-first-'));
    const sqlite = new SqliteStore(join(dir, 'state.db'));
    const writes: string[] = [];
    const store = new Proxy(sqlite, {
      get: (t, prop) => {
        const v = Reflect.get(t, prop) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (prop !== 'getCheckpoint') writes.push(`${String(prop)} ${String(args[0])}`);
          return (v as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
    const ctx = new TestSourceContext({ store, batchSize: 10 });
    const src = new NatsSource(withDefaults(NatsSourceConfig, { subject: `${name}.>`, jetstream: { stream: name, durable: 'ix' } }));
    const done = src.run(ctx);
    try {
      const js = jetstream(nc);
      await Promise.all(Array.from({ length: 50 }, (_, n) => js.publish(`${name}.x`, JSON.stringify({ n }))));
      await ctx.waitFor(() => ctx.delivered.size === 50, 15_000, 'every message');
      expect(new Set(writes)).toEqual(new Set([`setCheckpoint nats-delivered:${name}:ix`]));
      expect(writes.length).toBeLessThanOrEqual(ctx.emits);
      expect((await sqlite.getCheckpoint(`nats-delivered:${name}:ix`))?.split(' ')[1]).toBe('50');
    } finally {
      ctx.stop();
      await done;
      await sqlite.close();
      rmSync(dir, { recursive: true, force: true });
      await jsm.streams.delete(name).catch(() => undefined);
    }
  });
});
