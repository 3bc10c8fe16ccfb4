import type { Registry } from '../../registry/registry.js';
import { defineSink, defineSource, defineStep } from '../../registry/registry.js';
import { withDefaults } from '../broker-kit.js';
import { CacheStep } from './cache-step.js';
import { CacheStepConfig, PubSubSinkConfig, PubSubSourceConfig, StreamSinkConfig, StreamSourceConfig } from './config.js';
import { RedisPubSubSource } from './pubsub-source.js';
import { RedisPubSubSink, RedisStreamSink } from './sinks.js';
import { RedisStreamSource } from './stream-source.js';

export { CacheStep, RedisPubSubSink, RedisPubSubSource, RedisStreamSink, RedisStreamSource };
export { CacheStepConfig, PubSubSinkConfig, PubSubSourceConfig, StreamSinkConfig, StreamSourceConfig };

export const redisStreamSource = defineSource({
  cluster: 'every-worker',
  kind: 'redis-stream',
  summary: 'Reads a Redis stream through a consumer group; XACK after settle, XAUTOCLAIM for stuck entries.',
  config: StreamSourceConfig,
  examples: [{ title: 'A consumer group on a stream', yaml: 'url: redis://127.0.0.1:6379\nstream: orders\ngroup: billing\nclaimIdle: 1m\nmaxDeliveries: 5' }],
  create: (config) => new RedisStreamSource(withDefaults(StreamSourceConfig, config)),
});

export const redisStreamSink = defineSink({
  kind: 'redis-stream',
  summary: 'XADDs messages to a stream named from the message.',
  config: StreamSinkConfig,
  examples: [{ title: 'One stream per region', yaml: 'stream: "orders.${region}"\nmaxLen: 1000000' }],
  create: (config) => new RedisStreamSink(withDefaults(StreamSinkConfig, config)),
});

export const redisPubSubSource = defineSource({
  kind: 'redis-pubsub',
  summary: 'Subscribes to Redis channels and patterns (at most once).',
  config: PubSubSourceConfig,
  examples: [{ title: 'A pattern subscription', yaml: 'patterns: [ "orders.*" ]' }],
  create: (config) => new RedisPubSubSource(withDefaults(PubSubSourceConfig, config)),
});

export const redisPubSubSink = defineSink({
  kind: 'redis-pubsub',
  summary: 'PUBLISHes each payload to a channel named from the message.',
  config: PubSubSinkConfig,
  create: (config) => new RedisPubSubSink(withDefaults(PubSubSinkConfig, config)),
});

export const cacheStep = defineStep({
  kind: 'cache',
  summary: 'Redis-backed cache: get (enrich), set with TTL, or dedupe by key.',
  config: CacheStepConfig,
  examples: [
    { title: 'Enrich from the cache', yaml: 'op: get\nkey: "customer:${customerId}"\ninto: customer' },
    { title: 'Dedupe by order number for a day', yaml: 'op: dedupe\nkey: "order:${number}"\nttl: 1d' },
  ],
  create: (config) => new CacheStep(withDefaults(CacheStepConfig, config)),
});

export function register(registry: Registry): void {
  registry.registerSource(redisStreamSource).registerSource(redisPubSubSource);
  registry.registerSink(redisStreamSink).registerSink(redisPubSubSink);
  registry.registerStep(cacheStep);
}
