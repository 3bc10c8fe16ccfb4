import type { Registry } from '../../registry/registry.js';
import { defineSink, defineSource } from '../../registry/registry.js';
import { withDefaults } from '../broker-kit.js';
import { NatsSinkConfig, NatsSourceConfig } from './config.js';
import { NatsSink } from './sink.js';
import { NatsSource } from './source.js';

export { NatsSink, NatsSinkConfig, NatsSource, NatsSourceConfig };

export const natsSource = defineSource({
  cluster: (config) => (config.jetstream || config.queue ? 'every-worker' : 'leader'),
  clusterDoc: 'with `jetstream` (a shared durable consumer) or a `queue` group it runs on every worker, which share the messages; a plain subscription runs on one leader worker at a time, since each subscriber would receive every message.',
  kind: 'nats',
  summary: 'Consumes NATS subjects (core, at most once) or a JetStream durable consumer (at least once).',
  config: NatsSourceConfig,
  examples: [
    {
      title: 'A JetStream durable consumer',
      yaml: 'servers: 127.0.0.1:4222\nsubject: "orders.>"\njetstream: { stream: ORDERS, durable: billing, ackWait: 30s }\nmaxDeliveries: 5\nretryDelay: 2s',
    },
    { title: 'Core subjects with a queue group', yaml: 'subject: "events.*"\nqueue: workers' },
  ],
  create: (config) => new NatsSource(withDefaults(NatsSourceConfig, config)),
});

export const natsSink = defineSink({
  kind: 'nats',
  summary: 'Publishes to NATS subjects templated from the message, through JetStream (acked, de-duplicated) or core.',
  config: NatsSinkConfig,
  examples: [{ title: 'JetStream publish by region', yaml: 'subject: "orders.${region}"\njetstream: true' }],
  create: (config) => new NatsSink(withDefaults(NatsSinkConfig, config)),
});

export function register(registry: Registry): void {
  registry.registerSource(natsSource).registerSink(natsSink);
}
