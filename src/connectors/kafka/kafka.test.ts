import { randomUUID } from 'node:crypto';
import kafkajs from 'kafkajs';
import { describe } from 'vitest';
import { sinkContract, type ReadBack } from '../../testing/sink-contract.js';
import { sourceContract } from '../../testing/source-contract.js';
import { withDefaults } from '../broker-kit.js';
import { KafkaSinkConfig, KafkaSourceConfig } from './config.js';
import { KafkaSink, KafkaSource } from './kafka.js';

/** No Kafka broker runs on this machine: these suites run only when KAFKA_BROKERS names one (host:port,…). */
const brokers = (process.env['KAFKA_BROKERS'] ?? '').split(',').filter((b) => b.length > 0);
const uid = (): string => `ix-test-${randomUUID().slice(0, 8)}`;

describe.skipIf(brokers.length === 0)('kafka', () => {
  const kafka = new kafkajs.Kafka({ clientId: 'ix-test', brokers, logLevel: kafkajs.logLevel.NOTHING });

  sourceContract(
    'kafka',
    async () => {
      const topic = uid();
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      const groupId = uid();
      return {
        createSource: (o) =>
          new KafkaSource(withDefaults(KafkaSourceConfig, { brokers, topics: [topic], groupId, maxDeliveries: o.maxDeliveries, retryDelay: o.retryDelay })),
        publish: async (recs) => {
          await producer.send({
            topic,
            acks: -1,
            messages: recs.map((r) => ({ key: r.key ?? null, value: JSON.stringify(r.payload), headers: { ...r.headers } })),
          });
        },
        publishRaw: async (body) => {
          await producer.send({ topic, messages: [{ value: body }] });
        },
        cleanup: async () => {
          await producer.disconnect();
          await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
          await admin.disconnect();
        },
      };
    },
    { redelivers: true },
  );

  sinkContract(
    'kafka',
    async () => {
      const topic = uid();
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
      const got: ReadBack[] = [];
      const consumer = kafka.consumer({ groupId: uid() });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          const h: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) h[k] = String(v);
          got.push({ id: h['ix-id'] as string, key: message.key?.toString() as string, headers: h, payload: JSON.parse(message.value?.toString() ?? 'null') });
        },
      });
      return {
        createSink: () => new KafkaSink(withDefaults(KafkaSinkConfig, { brokers, topic })),
        read: async () => got,
        cleanup: async () => {
          await consumer.disconnect();
          await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
          await admin.disconnect();
        },
      };
    },
    { keepsIds: true, keepsHeaders: true, dedupes: false },
  );
});
