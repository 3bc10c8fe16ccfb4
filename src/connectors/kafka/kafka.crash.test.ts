import { randomUUID } from 'node:crypto';
import kafkajs from 'kafkajs';
import { describe, it } from 'vitest';
import { brokerCrashSuite } from '../../testing/broker-crash.js';

/** No Kafka broker runs on this machine: this suite runs only when KAFKA_BROKERS names one (host:port,…). */
const brokers = (process.env['KAFKA_BROKERS'] ?? '').split(',').filter((b) => b.length > 0);

if (brokers.length === 0) {
  console.warn('\n*** kafka crash suite SKIPPED: set KAFKA_BROKERS=host:port to run it against a Kafka broker ***\n');
  describe('kafka end to end', () => {
    it.skip('needs KAFKA_BROKERS', () => undefined);
  });
} else {
  describe('kafka end to end', () => {
    brokerCrashSuite(
      'kafka',
      async () => {
        const kafka = new kafkajs.Kafka({ clientId: 'ix-crash-test', brokers, logLevel: kafkajs.logLevel.NOTHING });
        const input = `ix-crash-in-${randomUUID().slice(0, 8)}`;
        const output = `ix-crash-out-${randomUUID().slice(0, 8)}`;
        const admin = kafka.admin();
        await admin.connect();
        await admin.createTopics({ topics: [{ topic: input, numPartitions: 2 }, { topic: output, numPartitions: 1 }], waitForLeaders: true });
        const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
        await producer.connect();
        const seen = new Set<number>();
        let writes = 0;
        const reader = kafka.consumer({ groupId: `${output}-reader` });
        await reader.connect();
        await reader.subscribe({ topic: output, fromBeginning: true });
        await reader.run({
          eachMessage: ({ message }) => {
            writes++;
            seen.add((JSON.parse(message.value?.toString('utf8') ?? 'null') as { n: number }).n);
            return Promise.resolve();
          },
        });
        const groupId = `${input}-engine`;
        return {
          source: ({ maxDeliveries }) => ({ kafka: { brokers, topics: [input], groupId, sessionTimeout: '6s', maxDeliveries, retryDelay: '200ms', reconnect: { initial: '100ms', max: '1s' } } }),
          sink: () => ({ kafka: { brokers, topic: output } }),
          deadSink: () => ({ kafka: { brokers: ['127.0.0.1:1'], topic: output } }),
          publish: async (from, count) => {
            for (let i = from; i < from + count; i += 500) {
              const messages = [];
              for (let n = i; n < Math.min(from + count, i + 500); n++) messages.push({ key: String(n % 7), value: JSON.stringify({ n }) });
              await producer.send({ topic: input, acks: -1, messages });
            }
          },
          output: () => Promise.resolve(new Set(seen)),
          written: () => Promise.resolve(writes),
          cleanup: async () => {
            await reader.disconnect().catch(() => undefined);
            await producer.disconnect().catch(() => undefined);
            await admin.deleteTopics({ topics: [input, output] }).catch(() => undefined);
            await admin.disconnect().catch(() => undefined);
          },
        };
      },
      // Kafka keeps no delivery count (the source counts in its process, so a poison message is
      // caught within a run, not across crashes); a TcpProxy cannot cut a Kafka client off (it
      // reconnects to the advertised broker address).
      { brokerAddress: brokers[0] as string, countsDeliveries: false, cutsConnection: false },
    );
  });
}
