import { Type, type Static } from '@sinclair/typebox';
import { SecretType } from '../../registry/types.js';
import { DeliveryType, DurationType, FormatType, HeaderRouteType } from '../broker-kit.js';

const Servers = Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })], {
  default: '127.0.0.1:4222',
  description: 'NATS server(s): host:port or nats://host:port.',
});

const Auth = {
  user: Type.Optional(Type.String()),
  pass: Type.Optional(SecretType({ description: 'A secret reference, ${secrets.NAME}; never logged.' })),
  token: Type.Optional(SecretType({ description: 'A secret reference, ${secrets.NAME}; never logged.' })),
};

export const NatsSourceConfig = Type.Object(
  {
    servers: Servers,
    ...Auth,
    subject: Type.String({ description: 'Subject, wildcards allowed: `orders.*`, `orders.>`. With JetStream, the consumer\'s filter subject.' }),
    queue: Type.Optional(Type.String({ description: 'Core NATS: queue group, so several workers share the subject.' })),
    jetstream: Type.Optional(
      Type.Object(
        {
          stream: Type.String({ description: 'Stream name.' }),
          durable: Type.String({ description: 'Durable consumer name; several workers with the same name share its messages.' }),
          createStream: Type.Optional(
            Type.Array(Type.String(), { description: 'Create the stream (if missing) capturing these subjects.' }),
          ),
          ackWait: DurationType({ default: '30s', description: 'How long the server waits for an ack before redelivering (a crashed worker\'s messages).' }),
          deliverPolicy: Type.Union([Type.Literal('all'), Type.Literal('new'), Type.Literal('last')], { default: 'all' }),
        },
        { additionalProperties: false, description: 'Consume a JetStream stream through a durable pull consumer (at least once).' },
      ),
    ),
    prefetch: Type.Integer({ minimum: 1, default: 256, description: 'JetStream: messages pulled ahead and held unacknowledged at most.' }),
    format: FormatType,
    keyHeader: Type.String({ default: 'ix-key' }),
    ...DeliveryType,
  },
  { additionalProperties: false },
);
export type NatsSourceConfig = Static<typeof NatsSourceConfig>;

export const NatsSinkConfig = Type.Object(
  {
    servers: Servers,
    ...Auth,
    subject: Type.Optional(Type.String({ description: 'Subject, templated from the message: `orders.${region}`.' })),
    routes: Type.Array(HeaderRouteType, { default: [], description: 'Header-based routing: the first match picks the subject.' }),
    jetstream: Type.Boolean({
      default: false,
      description: 'Publish through JetStream: a write resolves once the stream stored every message; the message id (Nats-Msg-Id) de-duplicates redelivered writes within the stream\'s duplicate window.',
    }),
    format: FormatType,
    keyHeader: Type.String({ default: 'ix-key' }),
    timeout: DurationType({ default: '10s', description: 'How long a JetStream publish waits for its ack.' }),
  },
  { additionalProperties: false },
);
export type NatsSinkConfig = Static<typeof NatsSinkConfig>;

export function connectOptions(c: { servers: string | string[]; user?: string; pass?: string; token?: string }): {
  servers: string | string[];
  user?: string;
  pass?: string;
  token?: string;
} {
  return {
    servers: c.servers,
    ...(c.user !== undefined ? { user: c.user } : {}),
    ...(c.pass !== undefined ? { pass: c.pass } : {}),
    ...(c.token !== undefined ? { token: c.token } : {}),
  };
}
