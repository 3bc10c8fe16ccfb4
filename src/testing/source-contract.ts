import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Source } from '../core/component.js';
import type { Message } from '../core/message.js';
import { TestSourceContext, type TestSourceContextOptions } from './test-source-context.js';

/** One message a fixture publishes through the broker's raw client. */
export interface TestRecord {
  /** Unique per record; the fixture carries it in the payload as `n`. */
  n: number;
  payload: Record<string, unknown>;
  key?: string;
  headers?: Record<string, string>;
}

export interface SourceOptions {
  maxDeliveries: number;
  /** Milliseconds. */
  retryDelay: number;
  /** Connect through this host:port instead of the broker's (a TcpProxy), when given. */
  via?: string;
}

/** A fresh destination (queue, stream, subject …) with unique names for one test. */
export interface SourceFixture {
  createSource(opts: SourceOptions): Source | Promise<Source>;
  publish(records: readonly TestRecord[]): Promise<void>;
  /** Publishes a body that is not JSON. */
  publishRaw?(body: Buffer): Promise<void>;
  cleanup(): Promise<void>;
}

export interface SourceContractOptions {
  /** Whether the broker keeps unacknowledged messages and redelivers them (false: core NATS, Redis pub/sub, MQTT QoS 0). */
  redelivers: boolean;
  /** host:port of the broker, for the broker-loss test through a TcpProxy. */
  brokerAddress?: string;
  /** Records per test. @defaultValue 40 */
  count?: number;
  /** Milliseconds to wait after start before publishing (subscriptions without a backlog). */
  warmupMs?: number;
  /**
   * Milliseconds after which the fixture's broker hands a message nobody acknowledged to
   * another consumer (JetStream ackWait, Redis claimIdle). With it, the contract checks that a
   * live consumer keeps a message whose batch takes several times that long to settle.
   */
  redeliveryTimeoutMs?: number;
}

const n = (m: Message): number => (m.payload as { n: number }).n;

/**
 * The contract every broker source passes: it emits every published record with its payload,
 * headers and key under a stable id; acknowledges only after the batch settled (a stopped or
 * crashed consumer loses nothing); redelivers what did not settle; dead-letters a message
 * delivered more than `maxDeliveries` times; reports a malformed body as a dead letter; and
 * survives the broker going away.
 */
export function sourceContract(name: string, makeFixture: () => Promise<SourceFixture>, opts: SourceContractOptions): void {
  const count = opts.count ?? 40;
  const records = (from = 0, k = count): TestRecord[] =>
    Array.from({ length: k }, (_, i) => ({
      n: from + i,
      payload: { n: from + i, region: i % 2 === 0 ? 'eu' : 'us', text: `record ${from + i}` },
      key: `k${(from + i) % 5}`,
      headers: { 'x-test': `h${from + i}` },
    }));

  describe(`${name} source contract`, () => {
    let fx: SourceFixture;
    const running: Running[] = [];

    const start = async (ctxOpts: TestSourceContextOptions = {}, srcOpts: Partial<SourceOptions> = {}): Promise<Running> => {
      const ctx = new TestSourceContext({ batchSize: 16, ...ctxOpts });
      const src = await fx.createSource({ maxDeliveries: 3, retryDelay: 100, ...srcOpts });
      const done = src.run(ctx).finally(() => src.close?.());
      const r = { ctx, done, src };
      running.push(r);
      if (opts.warmupMs) await new Promise((res) => setTimeout(res, opts.warmupMs));
      return r;
    };
    const stop = async (r: Running): Promise<void> => {
      r.ctx.stop();
      await r.done;
    };

    beforeEach(async () => {
      fx = await makeFixture();
    });
    afterEach(async () => {
      for (const r of running.splice(0)) {
        r.ctx.stop();
        await Promise.race([r.done.catch(() => undefined), new Promise((res) => setTimeout(res, 5000))]);
        await r.src.close?.();
      }
      await fx.cleanup();
    });

    it('emits every record with payload, headers and key under unique ids, and stops on abort', async () => {
      const r = await start();
      const recs = records();
      await fx.publish(recs);
      await r.ctx.waitFor(() => new Set(r.ctx.emitted.map(n)).size >= count, 15_000, 'all records');
      const byN = new Map(r.ctx.emitted.map((m) => [n(m), m]));
      for (const rec of recs) {
        const m = byN.get(rec.n);
        expect(m, `record ${rec.n}`).toBeDefined();
        expect(m?.payload).toEqual(rec.payload);
        expect(m?.headers['x-test']).toBe(rec.headers?.['x-test']);
        expect(m?.error).toBeUndefined();
      }
      expect(new Set(r.ctx.emitted.map((m) => m.id)).size).toBe(new Set(r.ctx.emitted.map(n)).size);
      await stop(r);
    });

    if (opts.redelivers) {
      it('acknowledges only after the batch settled: a consumer that stops before settling loses nothing', async () => {
        const a = await start({ decide: () => 'hang' });
        await fx.publish(records());
        await a.ctx.waitFor(() => a.ctx.emitted.length > 0, 15_000, 'first emit');
        const firstIds = new Map(a.ctx.emitted.map((m) => [n(m), m.id]));
        // a crash: the settles never resolve and the connection goes away
        running.splice(running.indexOf(a), 1);
        await abandon(a);
        const b = await start();
        await b.ctx.waitFor(() => new Set([...b.ctx.delivered.values()].map(n)).size >= count, 30_000, 'redelivery to a new consumer');
        for (const m of b.ctx.delivered.values()) {
          const id = firstIds.get(n(m));
          if (id !== undefined) expect(m.id, 'id is stable across redelivery').toBe(id);
        }
        await stop(b);
        // everything settled was acknowledged: a third consumer sees nothing
        const c = await start();
        await new Promise((res) => setTimeout(res, 1500));
        expect(c.ctx.emitted.length).toBe(0);
        await stop(c);
      });

      if (opts.redeliveryTimeoutMs !== undefined) {
        const timeout = opts.redeliveryTimeoutMs;
        it('keeps a message whose batch settles slowly: no redelivery, to it or another consumer, while it is alive', async () => {
          const slow = await start({ settleDelayMs: timeout * 3 });
          await fx.publish(records(0, 10));
          await slow.ctx.waitFor(() => slow.ctx.emitted.length >= 10, 30_000, 'the slow consumer holding every record');
          const other = await start();
          await slow.ctx.waitFor(() => slow.ctx.delivered.size >= 10, 60_000, 'slow batches settled');
          // past another redelivery window: nothing comes back once acknowledged either
          await new Promise((res) => setTimeout(res, timeout * 2));
          expect(slow.ctx.emitted.map(n).sort((a, b) => a - b)).toEqual(records(0, 10).map((rec) => rec.n));
          expect(other.ctx.emitted.map(n)).toEqual([]);
          await stop(other);
          await stop(slow);
        }, 120_000);
      }

      it('redelivers a batch that did not settle, with the same id, after the retry delay', async () => {
        let rejects = 0;
        const r = await start({ decide: (m) => (n(m) === 3 && rejects++ === 0 ? 'reject' : 'deliver') });
        await fx.publish(records(0, 10));
        await r.ctx.waitFor(() => new Set([...r.ctx.delivered.values()].map(n)).size >= 10, 20_000, 'all delivered after a reject');
        const ids = r.ctx.emitted.filter((m) => n(m) === 3).map((m) => m.id);
        expect(ids.length).toBeGreaterThanOrEqual(2);
        expect(new Set(ids).size).toBe(1);
        expect(r.ctx.rejectedBatches).toBeGreaterThanOrEqual(1);
        await stop(r);
      });

      it('dead-letters a poison message after maxDeliveries and delivers the rest', async () => {
        const r = await start({ decide: (m) => (n(m) === 5 ? 'reject' : 'deliver'), batchSize: 1 }, { maxDeliveries: 3, retryDelay: 50 });
        await fx.publish(records(0, 10));
        await r.ctx.waitFor(
          () => r.ctx.deadLettered.size >= 1 && new Set([...r.ctx.delivered.values()].map(n)).size >= 9,
          30_000,
          'poison dead-lettered',
        );
        const dead = [...r.ctx.deadLettered.values()];
        expect(dead.map(n)).toEqual([5]);
        expect(dead[0]?.error).toMatch(/more than maxDeliveries 3/);
        expect(r.ctx.emitted.filter((m) => n(m) === 5).length).toBe(4);
        // acknowledged after dead-lettering: not delivered again
        await new Promise((res) => setTimeout(res, 1000));
        expect(r.ctx.emitted.filter((m) => n(m) === 5).length).toBe(4);
        await stop(r);
      });
    }

    it('hands a malformed body to the flow as a dead letter with its reason', async () => {
      if (!fx.publishRaw) return;
      const r = await start();
      await fx.publishRaw(Buffer.from('{not json'));
      await fx.publish(records(0, 1));
      await r.ctx.waitFor(() => r.ctx.deadLettered.size >= 1 && r.ctx.delivered.size >= 1, 15_000, 'malformed dead-lettered');
      const dead = [...r.ctx.deadLettered.values()][0];
      expect(dead?.error).toMatch(/not JSON/);
      expect(dead?.payload).toBe('{not json');
      await stop(r);
    });

    if (opts.brokerAddress !== undefined && opts.redelivers) {
      it('reconnects with backoff when the broker goes away and loses nothing', async () => {
        const { TcpProxy } = await import('./tcp-proxy.js');
        const [host, port] = (opts.brokerAddress as string).split(':');
        const proxy = await new TcpProxy(host as string, Number(port)).start();
        try {
          const r = await start({ settleDelayMs: 20 }, { via: proxy.url });
          await fx.publish(records(0, count));
          await r.ctx.waitFor(() => r.ctx.delivered.size >= 5, 15_000, 'first deliveries');
          proxy.cut();
          await fx.publish(records(count, count));
          await new Promise((res) => setTimeout(res, 1500));
          proxy.restore();
          await r.ctx.waitFor(() => new Set([...r.ctx.delivered.values()].map(n)).size >= 2 * count, 40_000, 'all records after the broker returned');
          await stop(r);
        } finally {
          await proxy.close();
        }
      });
    }
  });
}

interface Running {
  ctx: TestSourceContext;
  done: Promise<void>;
  src: Source;
}

/** A source whose settles hang forever: close it without waiting (the test simulates a crash). */
async function abandon(r: Running): Promise<void> {
  r.ctx.stop();
  r.done.catch(() => undefined);
  await r.src.close?.();
}
