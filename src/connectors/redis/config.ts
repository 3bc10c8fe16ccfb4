import { Type, type Static } from '@sinclair/typebox';
import { DeliveryType, DurationType, FormatType, HeaderRouteType } from '../broker-kit.js';

export const RedisUrl = Type.String({
  default: 'redis://127.0.0.1:6379',
  description: 'Redis URL: redis://[:password@]host:port[/db]. The password never appears in logs.',
});

export const StreamSourceConfig = Type.Object(
  {
    url: RedisUrl,
    stream: Type.String({ description: 'Stream key.' }),
    group: Type.String({ default: 'interchange', description: 'Consumer group (created at the start of the stream if missing).' }),
    consumer: Type.Optional(Type.String({ description: 'Consumer name within the group. @defaultValue hostname-pid' })),
    startId: Type.String({ default: '0', description: 'Where a new group starts: `0` (the whole stream) or `$` (new entries only).' }),
    count: Type.Integer({ minimum: 1, default: 256, description: 'Entries per XREADGROUP / XAUTOCLAIM call.' }),
    maxInFlight: Type.Integer({ minimum: 1, default: 1024, description: 'Unacknowledged entries this consumer holds at most.' }),
    block: DurationType({ default: '1s', description: 'How long XREADGROUP blocks waiting for new entries.' }),
    claimIdle: DurationType({
      default: '30s',
      description: 'Pending entries idle this long (a crashed consumer\'s) are reclaimed with XAUTOCLAIM. Keep it above the flow\'s settle time.',
    }),
    format: FormatType,
    ...DeliveryType,
  },
  { additionalProperties: false },
);
export type StreamSourceConfig = Static<typeof StreamSourceConfig>;

export const StreamSinkConfig = Type.Object(
  {
    url: RedisUrl,
    stream: Type.Optional(Type.String({ description: 'Stream key, templated from the message: `orders.${region}`.' })),
    routes: Type.Array(HeaderRouteType, { default: [], description: 'Header-based routing: the first match picks the stream.' }),
    maxLen: Type.Optional(Type.Integer({ minimum: 1, description: 'Approximate cap (XADD MAXLEN ~).' })),
    format: FormatType,
  },
  { additionalProperties: false },
);
export type StreamSinkConfig = Static<typeof StreamSinkConfig>;

export const PubSubSourceConfig = Type.Object(
  {
    url: RedisUrl,
    channels: Type.Array(Type.String(), { default: [], description: 'Channels to SUBSCRIBE.' }),
    patterns: Type.Array(Type.String(), { default: [], description: 'Glob patterns to PSUBSCRIBE: `orders.*`.' }),
    format: FormatType,
    reconnect: DeliveryType.reconnect,
  },
  { additionalProperties: false },
);
export type PubSubSourceConfig = Static<typeof PubSubSourceConfig>;

export const PubSubSinkConfig = Type.Object(
  {
    url: RedisUrl,
    channel: Type.Optional(Type.String({ description: 'Channel, templated from the message.' })),
    routes: Type.Array(HeaderRouteType, { default: [] }),
    format: FormatType,
  },
  { additionalProperties: false },
);
export type PubSubSinkConfig = Static<typeof PubSubSinkConfig>;

export const CacheStepConfig = Type.Object(
  {
    url: RedisUrl,
    op: Type.Union([Type.Literal('get'), Type.Literal('set'), Type.Literal('dedupe')], {
      description:
        '`get`: read the key and put the cached value at `into` (enrichment). `set`: store the value under the key with `ttl`. `dedupe`: let a message through once per key within `ttl`, filter later ones (a redelivery of the same message id still passes).',
    }),
    key: Type.String({ description: 'Cache key, templated from the message: `customer:${customerId}`.' }),
    prefix: Type.String({ default: 'ix:cache:', description: 'Prepended to every key.' }),
    ttl: Type.Optional(DurationType({ description: 'Expiry for `set` and `dedupe` (required for dedupe).' })),
    value: Type.Optional(Type.String({ description: '`set`: payload field to store (dot path). @defaultValue the whole payload' })),
    into: Type.Optional(Type.String({ description: '`get`: payload field that receives the cached value. @defaultValue `cached`' })),
    onMiss: Type.Union([Type.Literal('continue'), Type.Literal('filter'), Type.Literal('fail')], {
      default: 'continue',
      description: '`get` when the key is absent: pass the message on unchanged, filter it, or dead-letter it.',
    }),
  },
  { additionalProperties: false },
);
export type CacheStepConfig = Static<typeof CacheStepConfig>;
