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
import kafkajs from 'kafkajs';
import { connect as mqttConnectSync, connectAsync as mqttConnect, type IPublishPacket, type MqttClient, type Packet } from 'mqtt';
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
  /** Steady-state msgs/s (see `measure`). */
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

/**
 * Steady-state throughput, timed the same way for both sides by one observer polling the output
 * broker: from the first output seen to the last (`count`) output confirmed, so neither side's
 * start-up (connections, consumer groups, the engine's store) counts. Messages already out at the
 * first sample are not counted either. Rejects if `failed` rejects first.
 */
async function measure(outCount: () => Promise<number>, count: number, what: string, failed?: Promise<unknown>): Promise<number> {
  let broken: unknown;
  let isBroken = false;
  void failed?.catch((err: unknown) => {
    broken = err;
    isBroken = true;
  });
  const deadline = Date.now() + 300_000;
  let first: { t: number; n: number } | undefined;
  for (;;) {
    if (isBroken) throw broken instanceof Error ? broken : new Error(`bench: ${what} failed`);
    const n = await outCount();
    const t = performance.now();
    if (n >= count && first !== undefined && n > first.n) return (count - first.n) / ((t - first.t) / 1000);
    if (n >= count) throw new Error(`bench: ${what}: every output appeared before the first sample; raise the message count`);
    if (n > 0 && first === undefined) first = { t, n };
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
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

/** Runs the engine on a spec with one flow until the output holds `count`; returns msgs/s (`measure`). */
async function runEngine(source: unknown, sink: unknown, outCount: () => Promise<number>, count: number, what: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'ix-bench-brokers-'));
  const spec = join(dir, 'spec.yaml');
  writeFileSync(
    spec,
    JSON.stringify({ version: 1, admin: { enabled: false }, flows: { bench: { batchSize: ENGINE_BATCH, concurrency: ENGINE_CONCURRENCY, source, steps: [MAP_STEP], sink } } }),
  );
  const reg = registry();
  const app = startApp({ specFile: spec, store: `sqlite:${join(dir, 'state.db')}`, logger: silentLogger, registry: reg });
  try {
    return await measure(outCount, count, what, app);
  } finally {
    await app.then((a) => a.stop()).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

const uid = (): string => randomUUID().slice(0, 8);
const PREFETCH = 1000;
/** The flow's batch size and concurrency, which the raw loops match where they batch. */
const ENGINE_BATCH = 250;
const ENGINE_CONCURRENCY = 4;
const REDIS_READ = 500;

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
          q.outCount,
          count,
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
        const consuming = inCh.consume(q.input, (m) => {
          if (!m) return;
          const body = Buffer.from(JSON.stringify(mapJs(JSON.parse(m.content.toString()) as Record_)));
          outCh.publish('', q.output, body, { persistent: true, messageId: m.properties.messageId as string, headers: m.properties.headers }, (err) => {
            if (!err) inCh.ack(m);
          });
        });
        return await measure(q.outCount, count, 'raw rabbitmq output', consuming);
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
          q.outCount,
          count,
          'nats output',
        );
      } finally {
        await q.cleanup();
      }
    },
    async baseline(count) {
      const q = await prep(count);
      // The same shape and ack mode as ours: a pull consumer (max_messages = prefetch) on one
      // connection, batches of the flow's size (or what came within 5 ms), four at a time,
      // published on a second connection, each input acked only after its batch's publishes
      // were all acknowledged by the stream.
      const out = await natsConnect({ servers: '127.0.0.1:4222' });
      try {
        const jsm = await jetstreamManager(q.nc);
        await jsm.consumers.add(q.input, { durable_name: 'raw', ack_policy: 'explicit' as never, max_ack_pending: PREFETCH * 4 });
        const js = jetstream(q.nc);
        const jsOut = jetstream(out);
        const consumer = await js.consumers.get(q.input, 'raw');
        const messages = await consumer.consume({ max_messages: PREFETCH });
        const queue: JsMsg[] = [];
        let wake: (() => void) | undefined;
        let running = 0;
        const loop = (async (): Promise<void> => {
          for await (const m of messages as AsyncIterable<JsMsg>) {
            queue.push(m);
            wake?.();
          }
        })();
        let stopped = false;
        const pump = (async (): Promise<void> => {
          while (!stopped) {
            while (!stopped && (queue.length === 0 || running >= ENGINE_CONCURRENCY)) await new Promise<void>((r) => (wake = r));
            if (queue.length < ENGINE_BATCH) await new Promise((r) => setTimeout(r, 5));
            if (stopped) return;
            const batch = queue.splice(0, ENGINE_BATCH);
            running++;
            void Promise.all(batch.map((m) => jsOut.publish(`${q.output}.out`, JSON.stringify(mapJs(m.json() as Record_)), { msgID: `${q.input}:${m.seq}` })))
              .then(() => {
                for (const m of batch) m.ack();
              })
              // after the run: the connection closes under late redeliveries
              .catch(() => undefined)
              .finally(() => {
                running--;
                wake?.();
              });
          }
        })();
        try {
          return await measure(q.outCount, count, 'raw nats output', Promise.race([loop, pump]));
        } finally {
          stopped = true;
          wake?.();
          await messages.close();
          await pump;
        }
      } finally {
        await out.close();
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
          { 'redis-stream': { url: URL, stream: q.input, group: 'ix', count: REDIS_READ, maxInFlight: PREFETCH * 2, block: '100ms' } },
          { 'redis-stream': { url: URL, stream: q.output } },
          q.outCount,
          count,
          'redis output',
        );
      } finally {
        await q.cleanup();
      }
    },
    async baseline(count) {
      const q = await prep(count);
      // The same shape as ours: a reader connection reading COUNT 500 while fewer than
      // maxInFlight entries are unacknowledged, batches of the flow's size written by a
      // pipeline on a second connection, four at a time, each acked (XACK on a third) only after
      // its XADDs were answered.
      const rd = new Redis(URL);
      const wr = new Redis(URL);
      const ak = new Redis(URL);
      try {
        await rd.xgroup('CREATE', q.input, 'raw', '0');
        let done = 0;
        let held = 0;
        let running = 0;
        const slots: (() => void)[] = [];
        const writes: Promise<void>[] = [];
        const write = async (entries: [string, string[]][]): Promise<void> => {
          while (running >= ENGINE_CONCURRENCY) await new Promise<void>((r) => slots.push(r));
          running++;
          try {
            const p = wr.pipeline();
            for (const [, f] of entries) p.xadd(q.output, '*', 'payload', JSON.stringify(mapJs(JSON.parse(f[f.indexOf('payload') + 1] as string) as Record_)), 'ix-id', f[f.indexOf('ix-id') + 1] as string);
            await p.exec();
            await ak.xack(q.input, 'raw', ...entries.map((e) => e[0]));
            held -= entries.length;
            done += entries.length;
          } finally {
            running--;
            slots.shift()?.();
          }
        };
        const loop = (async (): Promise<void> => {
          while (done + held < count) {
            if (held + REDIS_READ > PREFETCH * 2) {
              await new Promise((r) => setTimeout(r, 1));
              continue;
            }
            const res = (await rd.xreadgroup('GROUP', 'raw', 'c1', 'COUNT', REDIS_READ, 'BLOCK', 100, 'STREAMS', q.input, '>')) as [string, [string, string[]][]][] | null;
            if (!res) continue;
            const entries = res[0]?.[1] ?? [];
            held += entries.length;
            for (let i = 0; i < entries.length; i += ENGINE_BATCH) writes.push(write(entries.slice(i, i + ENGINE_BATCH)));
          }
          await Promise.all(writes);
        })();
        const rate = await measure(q.outCount, count, 'raw redis output', loop);
        await loop;
        return rate;
      } finally {
        await Promise.all([rd.quit(), wr.quit(), ak.quit()]);
        await q.cleanup();
      }
    },
  };
}

function mqtt(): Side {
  const URL = 'mqtt://127.0.0.1:1883';
  // Both sides drain a prefilled persistent session: timing a live publisher would time the
  // publisher (its QoS 1 window), the same for both, and pin the ratio near 1. Mosquitto keeps
  // at most 1000 messages for a session while its client is away, so counts stay below that.
  const prefill = async (clientId: string, topic: string, count: number): Promise<void> => {
    const session = await mqttConnect(URL, { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } });
    await session.subscribeAsync(topic, { qos: 1 });
    await session.endAsync();
    const pub = await mqttConnect(URL, { protocolVersion: 5 });
    for (let i = 0; i < count; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, count - i) }, (_, k) =>
          pub.publishAsync(topic, JSON.stringify(record(i + k)), { qos: 1, properties: { userProperties: { 'ix-id': `m${i + k}` } } }),
        ),
      );
    }
    await pub.endAsync();
  };
  const dropSession = async (clientId: string): Promise<void> => {
    const c = await mqttConnect(URL, { clientId, clean: true, protocolVersion: 5 });
    await c.endAsync();
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
      const clientId = `ix-bench-${uid()}`;
      const out = await collector(`${base}/out`);
      await prefill(clientId, `${base}/in`, count);
      try {
        return await runEngine(
          { mqtt: { url: URL, topics: [`${base}/in`], clientId, qos: 1, clean: false } },
          { mqtt: { url: URL, topic: `${base}/out`, qos: 1 } },
          async () => out.got(),
          count,
          'mqtt output',
        );
      } finally {
        await out.c.endAsync();
        await dropSession(clientId);
      }
    },
    async baseline(count) {
      const base = `ix-bench-${uid()}`;
      const clientId = `ix-bench-raw-${uid()}`;
      const out = await collector(`${base}/out`);
      await prefill(clientId, `${base}/in`, count);
      const outPub = await mqttConnect(URL, { protocolVersion: 5 });
      // handlers before the connection opens: the resumed session delivers right after CONNACK
      const sub = mqttConnectSync(URL, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 3600 } });
      try {
        // Same ack mode as ours: the PUBACK for an input goes out only after its output was
        // acknowledged, while the client reads on (the broker's in-flight window, not one
        // message at a time: mqtt.js's handleMessage would hold the whole stream until its
        // callback, which would slow the raw side, not the broker).
        type Send = (packet: Packet, cb?: (err?: Error) => void) => void;
        const raw = sub as unknown as { _sendPacket: Send };
        const send = raw._sendPacket.bind(sub);
        const outputs = new Map<number, Promise<unknown>>();
        raw._sendPacket = (packet, cb) => {
          const mid = (packet as { messageId?: number }).messageId;
          const pending = packet.cmd === 'puback' && mid !== undefined ? outputs.get(mid) : undefined;
          if (!pending) return send(packet, cb);
          outputs.delete(mid as number);
          cb?.();
          void pending.then(() => send(packet));
        };
        sub.handleMessage = (packet, cb) => {
          const p = packet as IPublishPacket;
          const body = JSON.stringify(mapJs(JSON.parse(p.payload.toString()) as Record_));
          if (p.messageId !== undefined) outputs.set(p.messageId, outPub.publishAsync(`${base}/out`, body, { qos: 1 }));
          cb();
        };
        return await measure(async () => out.got(), count, 'raw mqtt output');
      } finally {
        await Promise.all([out.c.endAsync(), outPub.endAsync(), sub.endAsync()]);
        await dropSession(clientId);
      }
    },
  };
}

function kafka(brokers: string[]): Side {
  const client = new kafkajs.Kafka({ clientId: 'ix-bench', brokers, logLevel: kafkajs.logLevel.NOTHING });
  const PARTITIONS = 4;
  const prep = async (count: number) => {
    const input = `ix-bench-in-${uid()}`;
    const output = `ix-bench-out-${uid()}`;
    const admin = client.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: input, numPartitions: PARTITIONS }, { topic: output, numPartitions: PARTITIONS }], waitForLeaders: true });
    const producer = client.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (let i = 0; i < count; i += 1000) {
      const messages = [];
      for (let n = i; n < Math.min(count, i + 1000); n++) messages.push({ key: String(n % 16), value: JSON.stringify(record(n)), headers: { 'ix-id': `m${n}` } });
      await producer.send({ topic: input, acks: -1, messages });
    }
    await producer.disconnect();
    const outCount = async (): Promise<number> => {
      const offsets = await admin.fetchTopicOffsets(output);
      return offsets.reduce((sum, o) => sum + Number(o.high) - Number(o.low), 0);
    };
    return {
      input,
      output,
      outCount,
      cleanup: async () => {
        await admin.deleteTopics({ topics: [input, output] }).catch(() => undefined);
        await admin.disconnect();
      },
    };
  };
  return {
    async ours(count) {
      const q = await prep(count);
      try {
        return await runEngine(
          { kafka: { brokers, topics: [q.input], groupId: `${q.input}-ix` } },
          { kafka: { brokers, topic: q.output } },
          q.outCount,
          count,
          'kafka output',
        );
      } finally {
        await q.cleanup();
      }
    },
    async baseline(count) {
      const q = await prep(count);
      // The same ack mode as ours: per partition batch, an idempotent send with acks: all, then
      // the offset committed; one batch of the flow's size at a time, as our source does.
      const producer = client.producer({ idempotent: true, maxInFlightRequests: 1 });
      const consumer = client.consumer({ groupId: `${q.input}-raw` });
      try {
        await Promise.all([producer.connect(), consumer.connect()]);
        await consumer.subscribe({ topics: [q.input], fromBeginning: true });
        let done = 0;
        const finished = new Promise<void>((resolve) => {
          void consumer.run({
            autoCommit: false,
            eachBatchAutoResolve: false,
            eachBatch: async ({ batch, heartbeat }) => {
              for (let i = 0; i < batch.messages.length; i += ENGINE_BATCH) {
                const slice = batch.messages.slice(i, i + ENGINE_BATCH);
                await producer.send({
                  topic: q.output,
                  acks: -1,
                  messages: slice.map((m) => ({
                    ...(m.key ? { key: m.key } : {}),
                    value: JSON.stringify(mapJs(JSON.parse(m.value?.toString() ?? 'null') as Record_)),
                    headers: { 'ix-id': String(m.headers?.['ix-id'] ?? '') },
                  })),
                });
                const last = slice[slice.length - 1] as { offset: string };
                await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }]);
                await heartbeat();
                done += slice.length;
                if (done >= count) resolve();
              }
            },
          });
        });
        const rate = await measure(q.outCount, count, 'raw kafka output');
        await finished;
        return rate;
      } finally {
        await consumer.disconnect().catch(() => undefined);
        await producer.disconnect().catch(() => undefined);
        await q.cleanup();
      }
    },
  };
}

export const brokersBench: Bench = {
  name: 'brokers',
  summary: 'Per broker: broker → engine (map) → broker msgs/s next to the raw client loop with the same acks.',
  async run({ quick, args }): Promise<BenchResult[]> {
    // enough messages for several seconds per side in full mode (the steady state, not the ramp)
    let sides: [string, number, number, () => Side][] = [
      ['rabbitmq', 5672, quick ? 10_000 : 60_000, rabbit],
      ['nats', 4222, quick ? 10_000 : 60_000, nats],
      ['redis', 6379, quick ? 40_000 : 200_000, redis],
      // Mosquitto keeps at most 1000 messages for an absent session
      ['mqtt', 1883, quick ? 600 : 900, mqtt],
    ];
    // `npm run bench -- brokers redis nats`: only those
    if (args.length > 0) sides = sides.filter(([name]) => args.includes(name));
    const kafkaBrokers = (process.env['KAFKA_BROKERS'] ?? '').split(',').filter((x) => x.length > 0);
    if (kafkaBrokers.length > 0 && (args.length === 0 || args.includes('kafka'))) sides.push(['kafka', 0, quick ? 4000 : 20000, () => kafka(kafkaBrokers)]);
    const results: BenchResult[] = [];
    for (const [name, port, count, make] of sides) {
      if (port !== 0 && !(await up(port))) {
        console.log(`${name}: not reachable on 127.0.0.1:${port}, skipped`);
        continue;
      }
      const side = make();
      const rss = new RssSampler().start();
      // alternate, best of `rounds` each: the shared machine drifts
      const rounds = quick ? 1 : 2;
      let oursBest = 0;
      let baseBest = 0;
      for (let i = 0; i < rounds; i++) {
        baseBest = Math.max(baseBest, await side.baseline(count));
        oursBest = Math.max(oursBest, await side.ours(count));
      }
      const ours = oursBest;
      const baseline = baseBest;
      const r: BenchResult = {
        bench: `brokers-${name}`,
        unit: 'msgs/s',
        ours: round(ours, 1),
        baseline: round(baseline, 1),
        ratio: round(ours / baseline, 3),
        rssMB: rss.stop(),
        messages: count,
        note: 'broker → map → broker, input acked after the output was confirmed; both sides timed alike by one observer polling the output, from the first output seen to the last: start-up (connections, consumer groups, the engine\'s store) excluded on both sides',
      };
      console.log(`${name}: ours ${r.ours} msgs/s, raw client ${r.baseline} msgs/s, ratio ${r.ratio}`);
      results.push(r);
    }
    if (kafkaBrokers.length === 0) console.log('kafka: KAFKA_BROKERS is not set, skipped (no broker on this machine)');
    return results;
  },
};
