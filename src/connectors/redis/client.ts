import type * as IoRedis from 'ioredis';
import type { Redis } from 'ioredis';
import { lazyModule } from '../../core/lazy-module.js';

const ioredis = lazyModule<typeof IoRedis>('ioredis');

/**
 * A client that does not reconnect or queue on its own: a lost connection fails the commands
 * in flight, and the connector's own loop reconnects with backoff (sources) or the engine
 * retries the write (sinks).
 */
export function connectRedis(url: string, name: string): Redis {
  return new (ioredis().Redis)(url, {
    lazyConnect: true,
    connectionName: name,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 5000,
  });
}

/** A client for sinks and steps: reconnects itself, fails a command after one retry. */
export function sharedRedis(url: string, name: string): Redis {
  return new (ioredis().Redis)(url, {
    lazyConnect: true,
    connectionName: name,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
    connectTimeout: 5000,
  });
}

/** A reply value: strings, or buffers where the source reads `bytes`. */
export type Bulk = string | Buffer;

/** A stream entry as XREADGROUP / XCLAIM / XAUTOCLAIM return it; `null` fields: deleted meanwhile. */
export type StreamEntry = [Bulk, Bulk[] | null];

export const text = (b: Bulk): string => (typeof b === 'string' ? b : b.toString('utf8'));
