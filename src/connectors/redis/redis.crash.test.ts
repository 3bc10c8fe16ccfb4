import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe } from 'vitest';
import { brokerCrashSuite, brokerRestartSuite, OwnBroker, type CrashFixture } from '../../testing/broker-crash.js';
import { serviceAvailable } from '../../testing/services.js';

const URL = 'redis://127.0.0.1:6379';

/** Streams in and out on the server at `url`: the engine reads one with a group and writes the other. */
async function fixture(url: string): Promise<CrashFixture> {
  const input = `ix-crash-in-${randomUUID().slice(0, 8)}`;
  const output = `ix-crash-out-${randomUUID().slice(0, 8)}`;
  const r = new Redis(url);
  return {
    source: ({ maxDeliveries, via }) => ({
      'redis-stream': {
        url: via ? `redis://${via}` : url,
        stream: input,
        group: 'ix',
        // a restarted engine is a new consumer: the dead one's entries are reclaimed when idle this long
        claimIdle: '1s',
        block: '200ms',
        maxDeliveries,
        retryDelay: '200ms',
        reconnect: { initial: '100ms', max: '1s' },
      },
    }),
    sink: () => ({ 'redis-stream': { url, stream: output } }),
    deadSink: () => ({ 'redis-stream': { url: 'redis://127.0.0.1:1', stream: output } }),
    publish: async (from, count) => {
      const p = r.pipeline();
      for (let n = from; n < from + count; n++) p.xadd(input, '*', 'payload', JSON.stringify({ n }), 'ix-id', `${input}-${n}`);
      await p.exec();
    },
    output: async () => {
      const entries = (await r.xrange(output, '-', '+')) as [string, string[]][];
      const seen = new Set<number>();
      for (const [, f] of entries) seen.add((JSON.parse(f[f.indexOf('payload') + 1] as string) as { n: number }).n);
      return seen;
    },
    written: () => r.xlen(output),
    cleanup: async () => {
      await r.del(input, output);
      await r.quit();
    },
  };
}

describe.skipIf(!serviceAvailable('redis'))('redis end to end', () => {
  brokerCrashSuite('redis-stream', () => fixture(URL), { brokerAddress: '127.0.0.1:6379', countsDeliveries: true });
  // A redis-server of this test's own (the shared one on :6379 serves other suites), with an
  // append-only file: what it acknowledged is in the file before the reply.
  brokerRestartSuite(
    'redis-stream',
    () => new OwnBroker('redis-server', (port, dir) => ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--daemonize', 'no']),
    (address) => fixture(`redis://${address}`),
  );
});
