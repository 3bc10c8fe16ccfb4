import { Type, type Static } from '@sinclair/typebox';
import { DeliveryType, DurationType, FormatType, HeaderRouteType } from '../broker-kit.js';

const Url = Type.String({
  default: 'amqp://guest:guest@127.0.0.1:5672',
  description: 'AMQP 0-9-1 URL, e.g. amqp://user:${secrets.RABBIT_PASSWORD}@host:5672/vhost. The password never appears in logs.',
});

export const ExchangeType = Type.Object(
  {
    name: Type.String({ description: 'Exchange name.' }),
    // optional (not defaulted): this object sits in a union, where schema defaults do not apply
    type: Type.Optional(Type.Union([Type.Literal('direct'), Type.Literal('topic'), Type.Literal('fanout'), Type.Literal('headers')], { description: 'Default topic.' })),
    durable: Type.Optional(Type.Boolean({ description: 'Default true.' })),
  },
  { additionalProperties: false, description: 'An exchange to declare (idempotent) before use.' },
);

export const QueueDeclareType = Type.Object(
  {
    durable: Type.Optional(Type.Boolean({ description: 'Default true.' })),
    type: Type.Optional(
      Type.Union([Type.Literal('classic'), Type.Literal('quorum')], {
        description: 'Default classic. Quorum queues count deliveries across consumer crashes (x-delivery-count); classic queues support priorities.',
      }),
    ),
    deadLetterExchange: Type.Optional(Type.String({ description: 'Exchange RabbitMQ dead-letters to (x-dead-letter-exchange).' })),
    deadLetterRoutingKey: Type.Optional(Type.String()),
    messageTtl: Type.Optional(DurationType({ description: 'Per-queue message TTL (x-message-ttl).' })),
    maxPriority: Type.Optional(Type.Integer({ minimum: 1, maximum: 255, description: 'Enables priorities 0..maxPriority (classic queues).' })),
    maxLength: Type.Optional(Type.Integer({ minimum: 1 })),
    arguments: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Further x-arguments, passed as given.' })),
  },
  { additionalProperties: false },
);

export const BindingType = Type.Object(
  {
    exchange: Type.Union([Type.String(), ExchangeType], { description: 'Exchange name, or an exchange to declare.' }),
    routingKey: Type.String({ default: '', description: 'Binding key: `orders.*`, `orders.#` on topic exchanges.' }),
    headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Headers-exchange match values.' })),
    match: Type.Union([Type.Literal('all'), Type.Literal('any')], { default: 'all', description: 'Headers exchanges: x-match.' }),
  },
  { additionalProperties: false },
);

export const RabbitSourceConfig = Type.Object(
  {
    url: Url,
    queue: Type.String({ description: 'Queue to consume.' }),
    declare: Type.Union([QueueDeclareType, Type.Literal(false)], { default: {}, description: 'Declare the queue (idempotent), or `false` to use it as it is.' }),
    bindings: Type.Array(BindingType, { default: [], description: 'Bindings of the queue to exchanges.' }),
    prefetch: Type.Integer({ minimum: 1, maximum: 65535, default: 256, description: 'Unacknowledged messages the broker hands this consumer at most.' }),
    format: FormatType,
    keyHeader: Type.String({ default: 'ix-key', description: 'Header that carries the message key.' }),
    onExhausted: Type.Union([Type.Literal('dlq'), Type.Literal('broker')], {
      default: 'dlq',
      description:
        '`dlq`: a message past maxDeliveries goes to the store DLQ. `broker`: it is rejected without requeue, so RabbitMQ routes it to the queue\'s dead-letter exchange.',
    }),
    ...DeliveryType,
  },
  { additionalProperties: false },
);
export type RabbitSourceConfig = Static<typeof RabbitSourceConfig>;

export const RabbitSinkConfig = Type.Object(
  {
    url: Url,
    exchange: Type.Union([Type.String(), ExchangeType], {
      default: '',
      description: 'Exchange to publish to ("" is the default exchange: the routing key names the queue), or an exchange to declare.',
    }),
    routingKey: Type.Optional(Type.String({ description: 'Routing key, templated from the message: `orders.${region}`.' })),
    routes: Type.Array(HeaderRouteType, { default: [], description: 'Header-based routing: the first match picks the routing key.' }),
    queue: Type.Optional(
      Type.Object(
        { name: Type.String(), declare: Type.Optional(QueueDeclareType) },
        { additionalProperties: false, description: 'A queue to declare (and bind to the exchange with the routing key, when an exchange is set).' },
      ),
    ),
    persistent: Type.Boolean({ default: true, description: 'delivery-mode 2: the broker writes the message to disk.' }),
    confirm: Type.Boolean({ default: true, description: 'Publisher confirms: a write resolves only after the broker confirmed every message.' }),
    priority: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 255 }), Type.String({ description: 'Template, e.g. ${priority}.' })])),
    ttl: Type.Optional(DurationType({ description: 'Per-message TTL (expiration).' })),
    format: FormatType,
    keyHeader: Type.String({ default: 'ix-key', description: 'Header that carries the message key.' }),
    timeout: DurationType({ default: '30s', description: 'How long a write waits for confirms.' }),
  },
  { additionalProperties: false },
);
export type RabbitSinkConfig = Static<typeof RabbitSinkConfig>;
