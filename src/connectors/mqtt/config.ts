import { Type, type Static } from '@sinclair/typebox';
import { SecretType } from '../../registry/types.js';
import { DeliveryType, DurationType, FormatType, HeaderRouteType } from '../broker-kit.js';

const Common = {
  url: Type.String({ default: 'mqtt://127.0.0.1:1883', description: 'Broker URL: mqtt://, mqtts://, ws://, wss://.' }),
  username: Type.Optional(Type.String()),
  password: Type.Optional(SecretType({ description: 'A secret reference, ${secrets.NAME}; never logged.' })),
  protocolVersion: Type.Union([Type.Literal(4), Type.Literal(5)], {
    default: 5,
    description: 'MQTT 3.1.1 (4) or 5. With 5, headers, the message id and the key travel as user properties.',
  }),
  qos: Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)], {
    default: 1,
    description: 'QoS 0 (at most once), 1 (at least once), 2 (exactly once between client and broker).',
  }),
  format: FormatType,
};

export const MqttSourceConfig = Type.Object(
  {
    ...Common,
    topics: Type.Array(Type.String(), { minItems: 1, description: 'Topic filters, wildcards allowed: `orders/+/created`, `orders/#`.' }),
    clientId: Type.Optional(
      Type.String({
        description:
          'Client id: the broker keys the persistent session by it (the store the delivery counts), and disconnects a client when another connects with the same id. Unset, it is `ix-FLOW`, stable across restarts; with only `$share/` topics, where every worker subscribes, each worker leases a session slot in the store instead (`ix-FLOW`, `ix-FLOW-1`, `ix-FLOW-2` …): workers sharing the store never collide, and a worker that starts resumes a free slot\'s session. Set, it is used as given: for several workers on `$share/` topics make it differ per worker and stay stable across restarts, e.g. `ix-readings-${env.HOSTNAME}`. @defaultValue ix-FLOW',
      }),
    ),
    clean: Type.Boolean({
      default: false,
      description: 'false: a persistent session, so QoS 1/2 messages published while the engine is away are kept and delivered on reconnect.',
    }),
    sessionExpiry: DurationType({ default: '7d', description: 'MQTT 5: how long the broker keeps the session while disconnected.' }),
    ...DeliveryType,
  },
  { additionalProperties: false },
);
export type MqttSourceConfig = Static<typeof MqttSourceConfig>;

export const MqttSinkConfig = Type.Object(
  {
    ...Common,
    topic: Type.Optional(Type.String({ description: 'Topic, templated from the message: `orders/${region}`.' })),
    routes: Type.Array(HeaderRouteType, { default: [], description: 'Header-based routing: the first match picks the topic.' }),
    retain: Type.Boolean({ default: false }),
    clientId: Type.Optional(Type.String()),
    timeout: DurationType({ default: '30s', description: 'How long a write waits for the broker\'s acknowledgements.' }),
  },
  { additionalProperties: false },
);
export type MqttSinkConfig = Static<typeof MqttSinkConfig>;
