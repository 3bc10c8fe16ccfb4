import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describe } from 'vitest';
import { brokerCrashSuite, brokerRestartSuite, OwnBroker, type CrashFixture } from '../../testing/broker-crash.js';
import { serviceAvailable } from '../../testing/services.js';

/** JetStream in and out on the server at `server`: the engine reads one stream and writes the other. */
async function fixture(server: string): Promise<CrashFixture> {
  const input = `IXIN_${randomUUID().slice(0, 8)}`;
  const output = `IXOUT_${randomUUID().slice(0, 8)}`;
  const nc = await connect({ servers: server, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: input, subjects: [`${input}.>`] });
  await jsm.streams.add({ name: output, subjects: [`${output}.>`] });
  const js = jetstream(nc);
  return {
    source: ({ maxDeliveries, via }) => ({
      nats: {
        servers: via ?? server,
        subject: `${input}.>`,
        // a crashed engine's unacked messages come back after ackWait
        jetstream: { stream: input, durable: 'ix', ackWait: '1s' },
        prefetch: 200,
        maxDeliveries,
        retryDelay: '200ms',
        reconnect: { initial: '100ms', max: '1s' },
      },
    }),
    sink: () => ({ nats: { servers: server, subject: `${output}.out`, jetstream: true } }),
    deadSink: () => ({ nats: { servers: '127.0.0.1:1', subject: `${output}.out`, jetstream: true } }),
    publish: async (from, count) => {
      for (let i = from; i < from + count; i += 200) {
        const ps = [];
        for (let n = i; n < Math.min(from + count, i + 200); n++) ps.push(js.publish(`${input}.x`, JSON.stringify({ n }), { msgID: `${input}-${n}` }));
        await Promise.all(ps);
      }
    },
    output: async () => {
      const seen = new Set<number>();
      const c = await js.consumers.get(output);
      const info = await jsm.streams.info(output);
      if (info.state.messages === 0) return seen;
      const it = await c.fetch({ max_messages: info.state.messages, expires: 1000 });
      for await (const m of it) {
        seen.add((m.json() as { n: number }).n);
        if (m.seq >= info.state.last_seq) break;
      }
      return seen;
    },
    written: async () => (await jsm.streams.info(output)).state.messages,
    cleanup: async () => {
      await jsm.streams.delete(input).catch(() => undefined);
      await jsm.streams.delete(output).catch(() => undefined);
      await nc.close();
    },
  };
}

describe.skipIf(!serviceAvailable('nats'))('nats end to end', () => {
  brokerCrashSuite('nats-jetstream', () => fixture('127.0.0.1:4222'), { brokerAddress: '127.0.0.1:4222', countsDeliveries: true });
  // A nats-server of this test's own (the shared one on :4222 serves other suites), storing on disk.
  brokerRestartSuite(
    'nats-jetstream',
    () => new OwnBroker('nats-server', (port, dir) => ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir]),
    fixture,
  );
});
