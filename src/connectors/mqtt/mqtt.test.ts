import { randomUUID } from 'node:crypto';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMessage } from '../../core/message.js';
import { serviceAvailable } from '../../testing/services.js';
import { sinkContract, testSinkContext, type ReadBack } from '../../testing/sink-contract.js';
import { sourceContract } from '../../testing/source-contract.js';
import { TestSourceContext } from '../../testing/test-source-context.js';
import { withDefaults } from '../broker-kit.js';
import { MqttSinkConfig, MqttSourceConfig } from './config.js';
import { MqttSink } from './sink.js';
import { MqttSource } from './source.js';

const URL = 'mqtt://127.0.0.1:1883';
const up = serviceAvailable('mqtt');
const uid = (): string => `ix-test-${randomUUID().slice(0, 8)}`;

describe.skipIf(!up)('mqtt', () => {
  let pub: MqttClient;
  beforeAll(async () => {
    pub = await connectAsync(URL, { protocolVersion: 5 });
  });
  afterAll(async () => {
    await pub?.endAsync();
  });

  for (const qos of [1, 2] as const) {
    sourceContract(
      `mqtt-qos${qos}`,
      async () => {
        const base = uid();
        const clientId = uid();
        return {
          createSource: (o) =>
            new MqttSource(
              withDefaults(MqttSourceConfig, {
                url: o.via ? `mqtt://${o.via}` : URL,
                topics: [`${base}/#`],
                clientId,
                qos,
                maxDeliveries: o.maxDeliveries,
                retryDelay: o.retryDelay,
                reconnect: { initial: 100, max: 1000 },
              }),
            ),
          publish: async (recs) => {
            // in chunks: the broker's receive maximum bounds a publisher's QoS 1/2 messages in flight
            for (let i = 0; i < recs.length; i += 10) {
              await Promise.all(
                recs.slice(i, i + 10).map((r) =>
                  pub.publishAsync(`${base}/${r.payload['region'] as string}`, JSON.stringify(r.payload), {
                    qos,
                    properties: { userProperties: { ...r.headers, 'ix-id': `m-${base}-${r.n}`, ...(r.key ? { 'ix-key': r.key } : {}) } },
                  }),
                ),
              );
            }
          },
          publishRaw: async (body) => {
            await pub.publishAsync(`${base}/raw`, body, { qos });
          },
          cleanup: async () => {
            // end the persistent session
            const c = await connectAsync(URL, { clientId, clean: true, protocolVersion: 5 });
            await c.endAsync();
          },
        };
      },
      { redelivers: true, brokerAddress: '127.0.0.1:1883', warmupMs: 300 },
    );
  }

  sourceContract(
    'mqtt-qos0',
    async () => {
      const base = uid();
      return {
        createSource: () => new MqttSource(withDefaults(MqttSourceConfig, { url: URL, topics: [`${base}/+`], qos: 0, clean: true })),
        publish: async (recs) => {
          await Promise.all(
            recs.map((r) =>
              pub.publishAsync(`${base}/${r.payload['region'] as string}`, JSON.stringify(r.payload), { qos: 0, properties: { userProperties: { ...r.headers } } }),
            ),
          );
        },
        cleanup: async () => undefined,
      };
    },
    { redelivers: false, warmupMs: 300 },
  );

  const state = { sub: undefined as MqttClient | undefined, got: [] as ReadBack[], topic: '' };
  sinkContract(
    'mqtt',
    async () => {
      state.topic = uid();
      state.got = [];
      const sub = await connectAsync(URL, { protocolVersion: 5 });
      sub.on('message', (topic, body, packet) => {
        const props = (packet.properties?.userProperties ?? {}) as Record<string, string>;
        const { 'ix-id': id, 'ix-key': key, ...headers } = props;
        state.got.push({ id: id as string, key: key as string, headers, payload: JSON.parse(body.toString()), destination: topic });
      });
      await sub.subscribeAsync(`${state.topic}/#`, { qos: 1 });
      state.sub = sub;
      return {
        createSink: () => new MqttSink(withDefaults(MqttSinkConfig, { url: URL, topic: `${state.topic}/out` })),
        read: async () => state.got,
        cleanup: async () => {
          await state.sub?.endAsync();
        },
      };
    },
    { keepsIds: true, keepsHeaders: true, dedupes: false },
  );

  it('keeps QoS 1 messages published while the engine was away (persistent session) and routes by template', async () => {
    const base = uid();
    const clientId = uid();
    const cfg = withDefaults(MqttSourceConfig, { url: URL, topics: [`${base}/orders/+`], clientId, qos: 1 });
    // first run: establishes the session, then goes away
    const ctx1 = new TestSourceContext();
    const s1 = new MqttSource(cfg);
    const d1 = s1.run(ctx1);
    await new Promise((r) => setTimeout(r, 300));
    ctx1.stop();
    await d1;
    const sink = new MqttSink(withDefaults(MqttSinkConfig, { url: URL, topic: `${base}/orders/\${region}`, routes: [{ when: { priority: 'high' }, to: `${base}/urgent` }] }));
    const res = await sink.write(
      [
        createMessage({ id: 'a', payload: { region: 'eu' } }),
        createMessage({ id: 'b', payload: { region: 'us' } }),
        createMessage({ id: 'c', payload: { region: 'eu' }, headers: { priority: 'high' } }),
      ],
      testSinkContext(),
    );
    expect(res).toBeUndefined();
    await sink.close();
    const ctx2 = new TestSourceContext();
    const s2 = new MqttSource(cfg);
    const d2 = s2.run(ctx2);
    await ctx2.waitFor(() => ctx2.delivered.size >= 2, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(Object.fromEntries([...ctx2.delivered.values()].map((m) => [m.id, m.meta['topic']]))).toEqual({ a: `${base}/orders/eu`, b: `${base}/orders/us` });
    ctx2.stop();
    await d2;
    const c = await connectAsync(URL, { clientId, clean: true, protocolVersion: 5 });
    await c.endAsync();
  });
});
