import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMessage } from '../../core/message.js';
import { serviceAvailable } from '../../testing/services.js';
import { sinkContract, testSinkContext, type ReadBack } from '../../testing/sink-contract.js';
import { sourceContract } from '../../testing/source-contract.js';
import { TestSourceContext } from '../../testing/test-source-context.js';
import { silentLogger } from '../../core/logger.js';
import { systemClock } from '../../core/clock.js';
import { withDefaults } from '../broker-kit.js';
import { CacheStep } from './cache-step.js';
import { CacheStepConfig, PubSubSinkConfig, PubSubSourceConfig, StreamSinkConfig, StreamSourceConfig } from './config.js';
import { RedisPubSubSource } from './pubsub-source.js';
import { RedisPubSubSink, RedisStreamSink } from './sinks.js';
import { RedisStreamSource } from './stream-source.js';

const URL = 'redis://127.0.0.1:6379';
const up = serviceAvailable('redis');
const uid = (): string => `ix-test-${randomUUID().slice(0, 8)}`;

describe.skipIf(!up)('redis', () => {
  let r: Redis;
  beforeAll(async () => {
    r = new Redis(URL);
  });
  afterAll(async () => {
    await r?.quit();
  });

  async function readStream(stream: string): Promise<ReadBack[]> {
    const entries = (await r.xrange(stream, '-', '+')) as [string, string[]][];
    return entries.map(([, flat]) => {
      const f = new Map<string, string>();
      for (let i = 0; i + 1 < flat.length; i += 2) f.set(flat[i] as string, flat[i + 1] as string);
      const headers: Record<string, string> = {};
      for (const [k, v] of f) if (!['payload', 'ix-id', 'ix-key'].includes(k)) headers[k] = v;
      const rb: ReadBack = { payload: JSON.parse(f.get('payload') as string), headers, destination: stream };
      const id = f.get('ix-id');
      const key = f.get('ix-key');
      if (id !== undefined) rb.id = id;
      if (key !== undefined) rb.key = key;
      return rb;
    });
  }

  sourceContract(
    'redis-stream',
    async () => {
      const stream = uid();
      return {
        createSource: (o) =>
          new RedisStreamSource(
            withDefaults(StreamSourceConfig, {
              url: o.via ? `redis://${o.via}` : URL,
              stream,
              group: 'g',
              consumer: uid(),
              claimIdle: 800,
              block: 200,
              maxDeliveries: o.maxDeliveries,
              retryDelay: o.retryDelay,
              reconnect: { initial: 100, max: 1000 },
            }),
          ),
        publish: async (recs) => {
          const p = r.pipeline();
          for (const rec of recs) {
            const args: string[] = ['payload', JSON.stringify(rec.payload), 'ix-id', `m-${stream}-${rec.n}`];
            if (rec.key) args.push('ix-key', rec.key);
            for (const [k, v] of Object.entries(rec.headers ?? {})) args.push(k, v);
            p.xadd(stream, '*', ...args);
          }
          await p.exec();
        },
        publishRaw: async (body) => {
          await r.xadd(stream, '*', 'payload', body);
        },
        cleanup: async () => {
          await r.del(stream);
        },
      };
    },
    { redelivers: true, brokerAddress: '127.0.0.1:6379', redeliveryTimeoutMs: 800 },
  );

  let sinkStream = '';
  sinkContract(
    'redis-stream',
    async () => {
      sinkStream = uid();
      return {
        createSink: () => new RedisStreamSink(withDefaults(StreamSinkConfig, { url: URL, stream: sinkStream })),
        read: () => readStream(sinkStream),
        cleanup: async () => {
          await r.del(sinkStream);
        },
      };
    },
    { keepsIds: true, keepsHeaders: true, dedupes: false },
  );

  it('routes to streams templated from the message and by header', async () => {
    const base = uid();
    const sink = new RedisStreamSink(
      withDefaults(StreamSinkConfig, { url: URL, stream: `${base}.\${region}`, routes: [{ when: { priority: 'high' }, to: `${base}.urgent` }] }),
    );
    await sink.write(
      [
        createMessage({ id: 'a', payload: { region: 'eu' } }),
        createMessage({ id: 'b', payload: { region: 'us' } }),
        createMessage({ id: 'c', payload: { region: 'eu' }, headers: { priority: 'high' } }),
      ],
      testSinkContext(),
    );
    await sink.close();
    expect((await readStream(`${base}.eu`)).map((x) => x.id)).toEqual(['a']);
    expect((await readStream(`${base}.us`)).map((x) => x.id)).toEqual(['b']);
    expect((await readStream(`${base}.urgent`)).map((x) => x.id)).toEqual(['c']);
    await r.del(`${base}.eu`, `${base}.us`, `${base}.urgent`);
  });

  it('reclaims entries a crashed consumer left pending (XAUTOCLAIM) and counts their deliveries', async () => {
    const stream = uid();
    await r.xgroup('CREATE', stream, 'g', '0', 'MKSTREAM');
    await r.xadd(stream, '*', 'payload', '{"n":1}', 'ix-id', 'stuck-1');
    // a consumer that read the entry and died
    await r.xreadgroup('GROUP', 'g', 'dead-consumer', 'COUNT', 10, 'STREAMS', stream, '>');
    const ctx = new TestSourceContext();
    const src = new RedisStreamSource(withDefaults(StreamSourceConfig, { url: URL, stream, group: 'g', consumer: 'alive', claimIdle: 300, block: 100 }));
    const done = src.run(ctx);
    await ctx.waitFor(() => ctx.delivered.has('stuck-1'), 10_000);
    expect(ctx.delivered.get('stuck-1')?.meta['deliveries']).toBe(2);
    ctx.stop();
    await done;
    const pending = (await r.xpending(stream, 'g')) as [number];
    expect(pending[0]).toBe(0);
    await r.del(stream);
  });


  it('reads text formats as strings and `bytes` as exact buffers; an entry without a payload field is its fields', async () => {
    const stream = uid();
    const binary = Buffer.from([0xff, 0x00, 0xfe, 0x80]);
    await r.xadd(stream, '*', 'payload', binary, 'ix-id', 'bin', 'ix-key', 'k1', 'trace', 't-1');
    await r.xadd(stream, '*', 'a', '1', 'b', 'two', 'ix-id', 'fields');
    const read = async (format: 'bytes' | 'text', group: string): Promise<TestSourceContext> => {
      const ctx = new TestSourceContext();
      const src = new RedisStreamSource(withDefaults(StreamSourceConfig, { url: URL, stream, group, format, block: 100 }));
      const done = src.run(ctx);
      await ctx.waitFor(() => ctx.delivered.size >= 2, 10_000);
      ctx.stop();
      await done;
      return ctx;
    };
    const bytes = await read('bytes', 'gb');
    const bin = bytes.delivered.get('bin');
    expect(Buffer.isBuffer(bin?.payload) && (bin?.payload as Buffer).equals(binary)).toBe(true);
    expect(bin?.key).toBe('k1');
    expect(bin?.headers).toEqual({ trace: 't-1' });
    const textCtx = await read('text', 'gt');
    expect(textCtx.delivered.get('bin')?.payload).toBe(binary.toString('utf8'));
    expect(textCtx.delivered.get('fields')?.payload).toEqual({ a: '1', b: 'two', 'ix-id': 'fields' });
    expect(textCtx.delivered.get('fields')?.headers).toEqual({});
    await r.del(stream);
  });
  it('pub/sub: subscribes to channels and patterns, publishes to templated channels', async () => {
    const base = uid();
    const ctx = new TestSourceContext();
    const src = new RedisPubSubSource(withDefaults(PubSubSourceConfig, { url: URL, channels: [`${base}.exact`], patterns: [`${base}.p.*`] }));
    const done = src.run(ctx);
    await new Promise((res) => setTimeout(res, 300));
    const sink = new RedisPubSubSink(withDefaults(PubSubSinkConfig, { url: URL, channel: `${base}.\${where}` }));
    await sink.write(
      [createMessage({ id: '1', payload: { where: 'exact' } }), createMessage({ id: '2', payload: { where: 'p.x' } }), createMessage({ id: '3', payload: { where: 'other' } })],
      testSinkContext(),
    );
    await ctx.waitFor(() => ctx.delivered.size >= 2, 5000);
    await new Promise((res) => setTimeout(res, 200));
    expect([...ctx.delivered.values()].map((m) => (m.payload as { where: string }).where).sort()).toEqual(['exact', 'p.x']);
    expect([...ctx.delivered.values()].find((m) => m.meta['pattern'] !== undefined)?.meta['channel']).toBe(`${base}.p.x`);
    await sink.close();
    ctx.stop();
    await done;
  });

  it('cache step: set with TTL, get into a field, dedupe that lets a redelivery pass', async () => {
    const prefix = `${uid()}:`;
    const sctx = { ...testSinkContext(), signal: new AbortController().signal, logger: silentLogger, clock: systemClock };
    const set = new CacheStep(withDefaults(CacheStepConfig, { url: URL, op: 'set', key: 'cust:${payload.id}', prefix, ttl: '2s', value: 'profile' }));
    await set.process(createMessage({ id: 'm1', payload: { id: 7, profile: { tier: 'gold' } } }));
    expect(await r.pttl(`${prefix}cust:7`)).toBeGreaterThan(1000);
    const get = new CacheStep(withDefaults(CacheStepConfig, { url: URL, op: 'get', key: 'cust:${customerId}', prefix, into: 'customer.profile' }));
    const out = await get.process(createMessage({ id: 'm2', payload: { customerId: 7 } }));
    expect(out?.payload).toEqual({ customerId: 7, customer: { profile: { tier: 'gold' } } });
    const missFilter = new CacheStep(withDefaults(CacheStepConfig, { url: URL, op: 'get', key: 'cust:${customerId}', prefix, onMiss: 'filter' }));
    expect(await missFilter.process(createMessage({ id: 'm3', payload: { customerId: 8 } }))).toBeNull();
    const dedupe = new CacheStep(withDefaults(CacheStepConfig, { url: URL, op: 'dedupe', key: 'order:${number}', prefix, ttl: '1m' }));
    expect(await dedupe.process(createMessage({ id: 'a', payload: { number: 1 } }))).not.toBeNull();
    expect(await dedupe.process(createMessage({ id: 'a', payload: { number: 1 } })), 'a redelivery of the same id passes').not.toBeNull();
    expect(await dedupe.process(createMessage({ id: 'b', payload: { number: 1 } })), 'another message with the key is filtered').toBeNull();
    void sctx;
    for (const s of [set, get, missFilter, dedupe]) await s.close();
    await r.del(`${prefix}cust:7`, `${prefix}order:1`);
  });
});
