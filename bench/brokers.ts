/**
 * `npm run bench -- brokers [--quick]`: for each broker, messages per second through
 * broker → engine (a `map` step) → broker, next to the broker's raw client doing the same
 * consume → map → publish loop with the same acknowledgement mode (ack the input only after the
 * output was confirmed), in the same run. One JSON line per broker. Brokers that do not answer
 * are skipped; Kafka runs only when KAFKA_BROKERS names one.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as amqpConnect } from 'amqplib';
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { connectAsync as mqttConnect, type MqttClient } from 'mqtt';
import { connect as tcpConnect } from 'node:net';
import { startApp } from '../src/app/app.js';
import { createRegistry } from '../src/app/registry.js';
import { loadSpecText } from '../src/spec/load.js';
import { silentLogger } from '../src/core/logger.js';
import { RssSampler, round, type Bench, type BenchResult } from './harness.js';

interface Record_ {
  n: number;
  name: string;
  total: number;
}
const record = (n: number): Record_ => ({ n, name: `  customer ${n}  `, total: n * 1.25 });
/** The mapping both sides apply. */
const mapJs = (r: Record_): unknown => ({ id: r.n, name: r.name.trim(), amount_cents: Math.round(r.total * 100) });
const MAP_STEP = { map: { fields: [{ from: 'n', to: 'id' }, { from: 'name', to: 'name', transform: 'trim' }, { from: 'total', to: 'amount_cents', transform: 'round($ * 100)' }] } };

/** One broker: prefill an input, then run `ours` (the engine) or the raw loop until the output holds `count`. */
interface Side {
  /** Seconds until every message reached the output (prefill excluded; MQTT times from the first publish). */
  ours(count: number): Promise<number>;
  baseline(count: number): Promise<number>;
}

function up(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: '127.0.0.1', port });
    s.setTimeout(1000, () => (s.destroy(), resolve(false)));
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

async function waitFor(pred: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * One registry for every run, its spec validator compiled once before any timing (as an embedding
 * application holding the engine does): the compile is a one-off per process, not per message.
 */
let sharedRegistry: ReturnType<typeof createRegistry> | undefined;
function registry(): ReturnType<typeof createRegistry> {
  if (!sharedRegistry) {
    sharedRegistry = createRegistry();
    loadSpecText('version: 1\nflows:\n  warm:\n    source: { generate: { count: 1 } }\n    sink: { stdout: {} }\n', 'warm.yaml', sharedRegistry);
  }
  return sharedRegistry;
}

/** Runs the engine on a spec with one flow until `done()` holds; returns seconds. */
async function runEngine(source: unknown, sink: unknown, done: () => Promise<boolean>, what: string, before?: () => Promise<void>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'ix-bench-brokers-'));
  const spec = join(dir, 'spec.yaml');
  writeFileSync(
    spec,
    JSON.stringify({ version: 1, admin: { enabled: false }, flows: { bench: { batchSize: 250, concurrency: 4, source, steps: [MAP_STEP], sink } } }),
  );
  const reg = registry();
  // prefilled inputs: timed from before start-up (the engine consumes as soon as it starts);
  // live inputs (MQTT): from the first publish
  let t0 = performance.now();
  const app = await startApp({ specFile: spec, store: `sqlite:${join(dir, 'state.db')}`, logger: silentLogger, registry: reg });
  try {
    if (before) {
      await before();
      t0 = performance.now();
    }
    await waitFor(done, 300_000, what);
    return (performance.now() - t0) / 1000;
  } finally {
    await app.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const uid = (): string => randomUUID().slice(0, 8);
const PREFETCH = 1000;

function rabbit(): Side {
  const URL = 'amqp://guest:guest@127.0.0.1:5672';
  const prep = async (count: number): Promise<{ input: string; output: string; cleanup: () => Promise<void>; outCount: () => Promise<number> }> => {
    const input = `ix-bench-in-${uid()}`;
    const output = `ix-bench-out-${uid()}`;
    const conn = await amqpConnect(URL);
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue(input, { durable: true });
    await ch.assertQueue(output, { durable: true });
    for (let n = 0; n < count; n++) {
      if (!ch.sendToQueue(input, Buffer.from(JSON.stringify(record(n))), { persistent: true, messageId: `m${n}` })) await new Promise((r) => ch.once('drain', r));
    }
    await ch.waitForConfirms();
    return {
      input,
      output,
      outCount: async () => (await ch.checkQueue(output)).messageCount,
      cleanup: async () => {
        await ch.deleteQueue(input);
        await ch.deleteQueue(output);
        await conn.close();
      },
    };
  };
  return {
    async ours(count) {
      const q = await prep(count);
      try {
        return await runEngine(
          { rabbitmq: { url: URL, queue: q.input, prefetch: PREFETCH } },
          { rabbitmq: { url: URL, queue: { name: q.output } } },
          async () => (await q.outCount()) >= count,
          'rabbitmq output',
        );
      } finally {
        await q.cleanup();
      }
    },
    async baseline(count) {
      const q = await prep(count);
      const conn = await amqpConnect(URL);
      try {
        const inCh = await conn.createChannel();
        const outCh = await conn.createConfirmChannel();
        await inCh.prefetch(PREFETCH);
        let acked = 0;
        const t0 = performance.now();
        await new Promise<void>((resolve) => {
          void inCh.consume(q.input, (m) => {
            if (!m) return;
            const body = Buffer.from(JSON.stringify(mapJs(JSON.parse(m.content.toString()) as Record_)));
            outCh.publish('', q.output, body, { persistent: true, messageId: m.properties.messageId as string, headers: m.properties.headers }, (err) => {
              if (err) return;
              inCh.ack(m);
              if (++acked === count) resolve();
            });
          });
        });
        return (performance.now() - t0) / 1000;
      } finally {
        await conn.close();
        await q.cleanup();
      }
    },
  };
}

function nats(): Side {
  const prep = async (count: number) => {
    const input = `IXBIN_${uid()}`;
    const output = `IXBOUT_${uid()}`;
    const nc = await natsConnect({ servers: '127.0.0.1:4222' });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: input, subjects: [`${input}.>`] });
    await jsm.streams.add({ name: output, subjects: [`${output}.>`] });
    const js = jetstream(nc);
    for (let i = 0; i < count; i += 500) {
      const ps = [];
      for (let n = i; n < Math.min(count, i + 500); n++) ps.push(js.publish(`${input}.x`, JSON.stringify(record(n)), { msgID: `m${n}` }));
      await Promise.all(ps);
    }
    return {
      input,
      output,
      nc,
      outCount: async () => (await jsm.streams.info(output)).state.messages,
      cleanup: async () => {
        await jsm.streams.delete(input);
        await jsm.streams.delete(output);
        await nc.close();
      },
    };
  };
  return {
    async ours(count) {
      const q = await prep(count);
      try {
        return await runEngine(
          { nats: { subject: `${q.input}.>`, jetstream: { stream: q.input, durable: 'ix' }, prefetch: PREFETCH } },
          { nats: { subject: `${q.output}.out`, jetstream: true } },
          async () => (await q.outCount()) >= count,
          'nats output',
        );
      } finally {
        await q.cleanup();
      }
    },
    async baseline(count) {
      const q = await prep(count);
      try {
        const jsm = await jetstreamManager(q.nc);
        await jsm.consumers.add(q.input, { durable_name: 'raw', ack_policy: 'explicit' as never, max_ack_pending: PREFETCH * 4 });
        const js = jetstream(q.nc);
        const consumer = await js.consumers.get(q.input, 'raw');
        const t0 = performance.now();
        const messages = await consumer.consume({ max_messages: PREFETCH });
        let acked = 0;
        await new Promise<void>((resolve) => {
          void (async () => {
            for await (const m of messages as AsyncIterable<JsMsg>) {
              const body = JSON.stringify(mapJs(m.json() as Record_));
              void js.publish(`${q.output}.out`, body, { msgID: `${q.input}:${m.seq}` }).then(() => {
                m.ack();
                if (++acked === count) resolve();
              });
            }
          })();
        });
        const s = (performance.now() - t0) / 1000;
        await messages.close();
        return s;
      } finally {
        await q.cleanup();
      }
    },
  };
}

function redis(): Side {
  const URL = 'redis://127.0.0.1:6379';
  const prep = async (count: number) => {
    const input = `ix-bench-in-${uid()}`;
    const output = `ix-bench-out-${uid()}`;
    const r = new Redis(URL);
    for (let i = 0; i < count; i += 1000) {
      const p = r.pipeline();
      for (let n = i; n < Math.min(count, i + 1000); n++) p.xadd(input, '*', 'payload', JSON.stringify(record(n)), 'ix-id', `m${n}`);
      await p.exec();
    }
    return {
      input,
      output,
      r,
      outCount: async () => r.xlen(output),
      cleanup: async () => {
        await r.del(input, output);
        await r.quit();
      },
    };
  };
  return {
    async ours(count) {
      const q = await prep(count);
      try {
        return await runEngine(
          { 'redis-stream': { url: URL, stream: q.input, group: 'ix', count: 500, maxInFlight: PREFETCH * 2, block: '100ms' } },
          { 'redis-stream': { url: URL, stream: q.output } },
          async () => (await q.outCount()) >= count,
          'redis output',
        );
      } finally {
        await q.cleanup();
      }
    },
    async baseline(count) {
      const q = await prep(count);
      const rd = new Redis(URL);
      try {
        await rd.xgroup('CREATE', q.input, 'raw', '0');
        let done = 0;
        const t0 = performance.now();
        while (done < count) {
          const res = (await rd.xreadgroup('GROUP', 'raw', 'c1', 'COUNT', 500, 'BLOCK', 100, 'STREAMS', q.input, '>')) as [string, [string, string[]][]][] | null;
          if (!res) continue;
          const entries = res[0]?.[1] ?? [];
          const p = rd.pipeline();
          for (const [, f] of entries) p.xadd(q.output, '*', 'payload', JSON.stringify(mapJs(JSON.parse(f[f.indexOf('payload') + 1] as string) as Record_)), 'ix-id', f[f.indexOf('ix-id') + 1] as string);
          await p.exec();
          await rd.xack(q.input, 'raw', ...entries.map((e) => e[0]));
          done += entries.length;
        }
        return (performance.now() - t0) / 1000;
      } finally {
        await rd.quit();
        await q.cleanup();
      }
    },
  };
}

function mqtt(): Side {
  const URL = 'mqtt://127.0.0.1:1883';
  // The broker queues at most 1000 messages per session (mosquitto's default): publish while subscribed.
  const publishAll = async (pub: MqttClient, topic: string, count: number): Promise<void> => {
    for (let i = 0; i < count; i += 10) {
      await Promise.all(
        Array.from({ length: Math.min(10, count - i) }, (_, k) =>
          pub.publishAsync(topic, JSON.stringify(record(i + k)), { qos: 1, properties: { userProperties: { 'ix-id': `m${i + k}` } } }),
        ),
      );
    }
  };
  const collector = async (topic: string): Promise<{ c: MqttClient; got: () => number }> => {
    let got = 0;
    const c = await mqttConnect(URL, { protocolVersion: 5 });
    c.on('message', () => void got++);
    await c.subscribeAsync(topic, { qos: 1 });
    return { c, got: () => got };
  };
  return {
    async ours(count) {
      const base = `ix-bench-${uid()}`;
      const pub = await mqttConnect(URL, { protocolVersion: 5 });
      const out = await collector(`${base}/out`);
      const clientId = `ix-bench-${uid()}`;
      try {
        return await runEngine(
          { mqtt: { url: URL, topics: [`${base}/in`], clientId, qos: 1 } },
          { mqtt: { url: URL, topic: `${base}/out`, qos: 1 } },
          async () => out.got() >= count,
          'mqtt output',
          async () => {
            await new Promise((r) => setTimeout(r, 300));
            void publishAll(pub, `${base}/in`, count);
          },
        );
      } finally {
        await pub.endAsync();
        await out.c.endAsync();
        const c = await mqttConnect(URL, { clientId, clean: true, protocolVersion: 5 });
        await c.endAsync();
      }
    },
    async baseline(count) {
      const base = `ix-bench-${uid()}`;
      const pub = await mqttConnect(URL, { protocolVersion: 5 });
      const out = await collector(`${base}/out`);
      const outPub = await mqttConnect(URL, { protocolVersion: 5 });
      const sub = await mqttConnect(URL, { protocolVersion: 5, clientId: `ix-bench-raw-${uid()}`, clean: false });
      try {
        // same ack mode: the PUBACK for an input goes out only after its output was acknowledged
        sub.handleMessage = (packet, cb) => {
          const body = JSON.stringify(mapJs(JSON.parse((packet as { payload: Buffer }).payload.toString()) as Record_));
          outPub.publishAsync(`${base}/out`, body, { qos: 1 }).then(
            () => cb(),
            (err: Error) => cb(err),
          );
        };
        await sub.subscribeAsync(`${base}/in`, { qos: 1 });
        const t0 = performance.now();
        void publishAll(pub, `${base}/in`, count);
        await waitFor(async () => out.got() >= count, 300_000, 'raw mqtt output');
        return (performance.now() - t0) / 1000;
      } finally {
        await Promise.all([pub.endAsync(), out.c.endAsync(), outPub.endAsync(), sub.endAsync()]);
      }
    },
  };
}

export const brokersBench: Bench = {
  name: 'brokers',
  summary: 'Per broker: broker → engine (map) → broker msgs/s next to the raw client loop with the same acks.',
  async run({ quick }): Promise<BenchResult[]> {
    const sides: [string, number, number, () => Side][] = [
      ['rabbitmq', 5672, quick ? 4000 : 20000, rabbit],
      ['nats', 4222, quick ? 4000 : 20000, nats],
      ['redis', 6379, quick ? 4000 : 20000, redis],
      ['mqtt', 1883, quick ? 600 : 2000, mqtt],
    ];
    const results: BenchResult[] = [];
    for (const [name, port, count, make] of sides) {
      if (!(await up(port))) {
        console.log(`${name}: not reachable on 127.0.0.1:${port}, skipped`);
        continue;
      }
      const side = make();
      const rss = new RssSampler().start();
      // alternate, best of `rounds` each: the shared machine drifts
      const rounds = quick ? 1 : 2;
      let oursBest = Infinity;
      let baseBest = Infinity;
      for (let i = 0; i < rounds; i++) {
        baseBest = Math.min(baseBest, await side.baseline(count));
        oursBest = Math.min(oursBest, await side.ours(count));
      }
      const ours = count / oursBest;
      const baseline = count / baseBest;
      const r: BenchResult = {
        bench: `brokers-${name}`,
        unit: 'msgs/s',
        ours: round(ours, 1),
        baseline: round(baseline, 1),
        ratio: round(ours / baseline, 3),
        rssMB: rss.stop(),
        messages: count,
        note: 'broker → map → broker, input acked after the output was confirmed; ours includes the engine\'s start-up (store, connections), not the one-off spec schema compile',
      };
      console.log(`${name}: ours ${r.ours} msgs/s, raw client ${r.baseline} msgs/s, ratio ${r.ratio}`);
      results.push(r);
    }
    if (!process.env['KAFKA_BROKERS']) console.log('kafka: KAFKA_BROKERS is not set, skipped (no broker on this machine)');
    return results;
  },
};
