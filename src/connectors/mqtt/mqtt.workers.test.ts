import { randomUUID } from 'node:crypto';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ComponentStore } from '../../core/component.js';
import type { Logger } from '../../core/logger.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import { until } from '../../testing/poll.js';
import { serviceAvailable } from '../../testing/services.js';
import { TestSourceContext } from '../../testing/test-source-context.js';
import { withDefaults } from '../broker-kit.js';
import { MqttSourceConfig } from './config.js';
import { MqttSource } from './source.js';

const URL = 'mqtt://127.0.0.1:1883';
const uid = (): string => `ix-test-${randomUUID().slice(0, 8)}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Logged {
  readonly level: string;
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

function recordingLogger(into: Logged[], bindings: Record<string, unknown> = {}): Logger {
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void =>
      void into.push({ level, msg: typeof obj === 'string' ? obj : (msg ?? ''), fields: { ...bindings, ...(typeof obj === 'object' ? obj : {}) } });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (b) => recordingLogger(into, { ...bindings, ...b }) };
}

/** Two `ix run` processes on one spec: same flow and config, their own worker ids, each on `stores[i]`. */
function twoWorkers(topic: string, stores: readonly ComponentStore[], logs: Logged[]): { ctx: TestSourceContext; done: Promise<void> }[] {
  const flow = uid();
  const cfg = withDefaults(MqttSourceConfig, { url: URL, topics: [topic], qos: 1, reconnect: { initial: 100, max: 500 } });
  return ['w1', 'w2'].map((owner, i) => {
    const ctx = new TestSourceContext({ flow, owner, store: stores[i] as ComponentStore, logger: recordingLogger(logs, { owner }) });
    return { ctx, done: new MqttSource(cfg).run(ctx) };
  });
}

describe.skipIf(!serviceAvailable('mqtt'))('mqtt on several workers', () => {
  let pub: MqttClient;
  const sessions = new Set<string>();
  beforeAll(async () => {
    pub = await connectAsync(URL, { protocolVersion: 5 });
  });
  afterAll(async () => {
    await pub?.endAsync();
    // end the persistent sessions the sources left
    for (const clientId of sessions) {
      const c = await connectAsync(URL, { clientId, clean: true, protocolVersion: 5 }).catch(() => undefined);
      await c?.endAsync().catch(() => undefined);
    }
  });

  const subscribed = (logs: readonly Logged[]): Logged[] => logs.filter((l) => l.msg === 'mqtt: subscribed');
  const takeovers = (logs: readonly Logged[]): Logged[] => logs.filter((l) => l.msg.startsWith('mqtt: session taken over'));
  const stop = async (workers: readonly { ctx: TestSourceContext; done: Promise<void> }[], logs: readonly Logged[]): Promise<void> => {
    for (const w of workers) w.ctx.stop();
    await Promise.all(workers.map((w) => w.done));
    for (const l of subscribed(logs)) sessions.add(l.fields['clientId'] as string);
  };
  const publish = async (topic: string, ids: readonly string[]): Promise<void> => {
    // in chunks: the broker's receive maximum bounds a publisher's QoS 1 messages in flight
    for (let i = 0; i < ids.length; i += 10) {
      await Promise.all(ids.slice(i, i + 10).map((id) => pub.publishAsync(topic, JSON.stringify({ id }), { qos: 1, properties: { userProperties: { 'ix-id': id } } })));
    }
  };

  it('splits a $share/ subscription without a clientId between two workers on one store: each leases its own session, neither takes the other over, and every QoS 1 message arrives exactly once between them', async () => {
    const base = uid();
    const store = new SqliteStore(':memory:');
    const logs: Logged[] = [];
    const workers = twoWorkers(`$share/g/${base}/t`, [store, store], logs);
    const ids = Array.from({ length: 60 }, (_, n) => `${base}-${n}`);
    try {
      await until('both workers subscribed', () => Promise.resolve(subscribed(logs).length), (n) => n >= 2, 5000);
      await publish(`${base}/t`, ids);
      const emitted = (): string[] => workers.flatMap((w) => w.ctx.emitted.map((m) => m.id));
      await until('every message delivered', () => Promise.resolve(new Set(emitted()).size), (n) => n >= ids.length, 5000).catch(() => undefined);
      // a takeover loop shows within this: each takeover is a reconnect and a new subscription
      await sleep(2000);
      expect(takeovers(logs)).toEqual([]);
      expect(subscribed(logs).map((l) => l.fields['owner']).sort()).toEqual(['w1', 'w2']);
      expect(new Set(subscribed(logs).map((l) => l.fields['clientId'])).size).toBe(2);
      expect(emitted().sort()).toEqual([...ids].sort());
      for (const w of workers) expect(w.ctx.emitted.length).toBeGreaterThan(0);
    } finally {
      await stop(workers, logs);
      await store.close();
    }
  });

  it.each([
    ['without $share/ the default clientId stays ix-FLOW', '', 'default clientId'],
    ['with $share/ the workers need one store for their session slots', '$share/g/', 'share one store'],
  ])('%s: two engines on separate stores take the session over from each other, and each says what to do', async (_title, share, hint) => {
    const base = uid();
    const logs: Logged[] = [];
    const stores = [new SqliteStore(':memory:'), new SqliteStore(':memory:')];
    const workers = twoWorkers(`${share}${base}/t`, stores, logs);
    try {
      await until('a takeover warning from each', () => Promise.resolve(takeovers(logs).map((l) => l.fields['owner'])), (o) => new Set(o).size === 2, 5000);
      expect(subscribed(logs)[0]?.fields['clientId']).toBe(`ix-${workers[0]?.ctx.flow as string}`);
      for (const l of takeovers(logs)) expect(l.fields['hint']).toContain(hint);
    } finally {
      await stop(workers, logs);
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});
