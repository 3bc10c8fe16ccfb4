import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import { describe } from 'vitest';
import { brokerCrashSuite } from '../../testing/broker-crash.js';
import { serviceAvailable } from '../../testing/services.js';

const URL = 'amqp://guest:guest@127.0.0.1:5672';

describe.skipIf(!serviceAvailable('rabbitmq'))('rabbitmq end to end', () => {
  brokerCrashSuite(
    'rabbitmq',
    async () => {
      const input = `ix-crash-in-${randomUUID().slice(0, 8)}`;
      const output = `ix-crash-out-${randomUUID().slice(0, 8)}`;
      const conn = await connect(URL);
      const ch = await conn.createConfirmChannel();
      // quorum: the broker counts deliveries (x-delivery-count) across consumer crashes
      await ch.assertQueue(input, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      await ch.assertQueue(output, { durable: true });
      const seen = new Set<number>();
      let drained = 0;
      return {
        source: ({ maxDeliveries, via }) => ({
          rabbitmq: {
            url: via ? `amqp://guest:guest@${via}` : URL,
            queue: input,
            declare: { type: 'quorum' },
            prefetch: 200,
            maxDeliveries,
            retryDelay: '200ms',
            reconnect: { initial: '100ms', max: '1s' },
          },
        }),
        sink: () => ({ rabbitmq: { url: URL, queue: { name: output } } }),
        deadSink: () => ({ rabbitmq: { url: 'amqp://guest:guest@127.0.0.1:1', queue: { name: output } } }),
        publish: async (from, count) => {
          for (let n = from; n < from + count; n++) ch.sendToQueue(input, Buffer.from(JSON.stringify({ n })), { persistent: true, messageId: `${input}-${n}` });
          await ch.waitForConfirms();
        },
        output: async () => {
          for (;;) {
            const m = await ch.get(output, { noAck: true });
            if (m === false) break;
            drained++;
            seen.add((JSON.parse(m.content.toString()) as { n: number }).n);
          }
          return seen;
        },
        written: async () => drained + (await ch.checkQueue(output)).messageCount,
        cleanup: async () => {
          await ch.deleteQueue(input).catch(() => undefined);
          await ch.deleteQueue(output).catch(() => undefined);
          await conn.close().catch(() => undefined);
        },
      };
    },
    { brokerAddress: '127.0.0.1:5672', countsDeliveries: true },
  );
});
