import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe } from 'vitest';
import { brokerCrashSuite } from '../../testing/broker-crash.js';
import { serviceAvailable } from '../../testing/services.js';

const URL = 'redis://127.0.0.1:6379';

describe.skipIf(!serviceAvailable('redis'))('redis end to end', () => {
  brokerCrashSuite(
    'redis-stream',
    async () => {
      const input = `ix-crash-in-${randomUUID().slice(0, 8)}`;
      const output = `ix-crash-out-${randomUUID().slice(0, 8)}`;
      const r = new Redis(URL);
      return {
        source: ({ maxDeliveries, via }) => ({
          'redis-stream': {
            url: via ? `redis://${via}` : URL,
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
        sink: () => ({ 'redis-stream': { url: URL, stream: output } }),
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
    },
    { brokerAddress: '127.0.0.1:6379', countsDeliveries: true },
  );
});
