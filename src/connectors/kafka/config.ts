import { Type, type Static } from '@sinclair/typebox';
import { SecretType } from '../../registry/types.js';
import { DeliveryType, DurationType, FormatType, HeaderRouteType } from '../broker-kit.js';

const Common = {
  brokers: Type.Array(Type.String(), { minItems: 1, description: 'Bootstrap brokers, host:port.' }),
  clientId: Type.String({ default: 'interchange' }),
  ssl: Type.Boolean({ default: false }),
  sasl: Type.Optional(
    Type.Object(
      {
        mechanism: Type.Union([Type.Literal('plain'), Type.Literal('scram-sha-256'), Type.Literal('scram-sha-512')]),
        username: Type.String(),
        password: SecretType({ description: 'A secret reference, ${secrets.NAME}; never logged.' }),
      },
      { additionalProperties: false },
    ),
  ),
  format: FormatType,
};

export const KafkaSourceConfig = Type.Object(
  {
    ...Common,
    topics: Type.Array(Type.String(), { minItems: 1, description: 'Topics to consume.' }),
    groupId: Type.String({ description: 'Consumer group: workers with the same group split the partitions.' }),
    fromBeginning: Type.Boolean({ default: true, description: 'Where a new group starts.' }),
    sessionTimeout: DurationType({ default: '30s' }),
    ...DeliveryType,
  },
  { additionalProperties: false },
);
export type KafkaSourceConfig = Static<typeof KafkaSourceConfig>;

export const KafkaSinkConfig = Type.Object(
  {
    ...Common,
    topic: Type.Optional(Type.String({ description: 'Topic, templated from the message: `orders.${region}`.' })),
    routes: Type.Array(HeaderRouteType, { default: [], description: 'Header-based routing: the first match picks the topic.' }),
    key: Type.Optional(Type.String({ description: 'Partition key template, e.g. `${customerId}`. @defaultValue the message key' })),
    idempotent: Type.Boolean({ default: true, description: 'Idempotent producer (acks all, one writer sequence per partition): no duplicates from producer retries.' }),
    compression: Type.Union([Type.Literal('none'), Type.Literal('gzip')], { default: 'none' }),
    timeout: DurationType({ default: '30s' }),
  },
  { additionalProperties: false },
);
export type KafkaSinkConfig = Static<typeof KafkaSinkConfig>;
