import type { Registry } from '../../registry/registry.js';
import { defineSink, defineSource } from '../../registry/registry.js';
import { withDefaults } from '../broker-kit.js';
import { RabbitSinkConfig, RabbitSourceConfig } from './config.js';
import { RabbitSink } from './sink.js';
import { RabbitSource } from './source.js';

export { RabbitSink, RabbitSource, RabbitSinkConfig, RabbitSourceConfig };

export const rabbitSource = defineSource({
  cluster: 'every-worker',
  kind: 'rabbitmq',
  summary: 'Consumes a RabbitMQ queue with manual acks, prefetch, bindings and delivery limits.',
  description:
    'Each delivery is acknowledged only after the flow settled it (every sink accepted it, or it was dead-lettered or filtered). A batch that cannot settle is nacked and requeued after `retryDelay`; a message delivered more than `maxDeliveries` times goes to the DLQ. The consumer reconnects with backoff when the broker goes away.',
  config: RabbitSourceConfig,
  examples: [
    {
      title: 'A queue bound to a topic exchange',
      yaml: 'url: amqp://guest:guest@127.0.0.1:5672\nqueue: orders\nbindings: [ { exchange: { name: events, type: topic }, routingKey: "orders.#" } ]\nprefetch: 200\nmaxDeliveries: 5',
    },
  ],
  create: (config) => new RabbitSource(withDefaults(RabbitSourceConfig, config)),
});

export const rabbitSink = defineSink({
  kind: 'rabbitmq',
  summary: 'Publishes to a RabbitMQ exchange with publisher confirms and templated routing keys.',
  description: 'A write resolves once the broker confirmed every message. Routing keys are templates (`orders.${region}`) or picked by header routes.',
  config: RabbitSinkConfig,
  examples: [
    {
      title: 'Route by region on a topic exchange',
      yaml: 'exchange: { name: events, type: topic }\nroutingKey: "orders.${region}"\nroutes: [ { when: { priority: high }, to: "orders.urgent" } ]',
    },
  ],
  create: (config) => new RabbitSink(withDefaults(RabbitSinkConfig, config)),
});

export function register(registry: Registry): void {
  registry.registerSource(rabbitSource).registerSink(rabbitSink);
}
