import { randomUUID } from 'node:crypto';
import { connectAsync, type MqttClient } from 'mqtt';
import { describe } from 'vitest';
import { brokerCrashSuite } from '../../testing/broker-crash.js';
import { serviceAvailable } from '../../testing/services.js';

const URL = 'mqtt://127.0.0.1:1883';

describe.skipIf(!serviceAvailable('mqtt'))('mqtt end to end', () => {
  brokerCrashSuite(
    'mqtt',
    async () => {
      const base = `ix-crash-${randomUUID().slice(0, 8)}`;
      const clientId = `${base}-engine`;
      // The engine's persistent session exists before anything is published, so the broker
      // keeps for it what arrives while it is away (QoS 1).
      const session = await connectAsync(URL, { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } });
      await session.subscribeAsync(`${base}/in/#`, { qos: 1 });
      await session.endAsync();
      const seen = new Set<number>();
      let writes = 0;
      const reader: MqttClient = await connectAsync(URL, { clientId: `${base}-reader`, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } });
      reader.on('message', (_t, body) => {
        writes++;
        seen.add((JSON.parse(body.toString('utf8')) as { n: number }).n);
      });
      await reader.subscribeAsync(`${base}/out`, { qos: 1 });
      const pub = await connectAsync(URL, { protocolVersion: 5 });
      return {
        source: ({ maxDeliveries, via }) => ({
          mqtt: {
            url: via ? `mqtt://${via}` : URL,
            topics: [`${base}/in/#`],
            clientId,
            qos: 1,
            clean: false,
            sessionExpiry: '1h',
            maxDeliveries,
            retryDelay: '200ms',
            reconnect: { initial: '100ms', max: '1s' },
          },
        }),
        sink: () => ({ mqtt: { url: URL, topic: `${base}/out`, qos: 1 } }),
        deadSink: () => ({ mqtt: { url: 'mqtt://127.0.0.1:1', topic: `${base}/out`, qos: 1, timeout: '1s' } }),
        publish: async (from, count) => {
          // in chunks: the broker's receive maximum bounds a publisher's QoS 1 messages in flight
          for (let i = from; i < from + count; i += 10) {
            const ps = [];
            for (let n = i; n < Math.min(from + count, i + 10); n++) {
              ps.push(pub.publishAsync(`${base}/in/x`, JSON.stringify({ n }), { qos: 1, properties: { userProperties: { 'ix-id': `${base}-${n}` } } }));
            }
            await Promise.all(ps);
          }
        },
        output: () => Promise.resolve(new Set(seen)),
        written: () => Promise.resolve(writes),
        cleanup: async () => {
          await pub.endAsync().catch(() => undefined);
          await reader.unsubscribeAsync(`${base}/out`).catch(() => undefined);
          await reader.endAsync().catch(() => undefined);
          // drop the sessions the broker keeps
          for (const id of [clientId, `${base}-reader`]) {
            const c = await connectAsync(URL, { clientId: id, clean: true, protocolVersion: 5 }).catch(() => undefined);
            await c?.endAsync().catch(() => undefined);
          }
        },
      };
    },
    // Mosquitto queues at most 1000 messages for a session while its client is away.
    { brokerAddress: '127.0.0.1:1883', countsDeliveries: true, count: 800 },
  );
});
