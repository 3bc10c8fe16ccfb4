import type { Registry } from '../../registry/registry.js';
import { defineSink, defineSource } from '../../registry/registry.js';
import { withDefaults } from '../broker-kit.js';
import { KafkaSinkConfig, KafkaSourceConfig } from './config.js';
import { KafkaSink, KafkaSource } from './kafka.js';

export { KafkaSink, KafkaSinkConfig, KafkaSource, KafkaSourceConfig };

export const kafkaSource = defineSource({
  cluster: 'every-worker',
  kind: 'kafka',
  summary: 'A Kafka consumer-group member; offsets are committed only after the batch settled.',
  config: KafkaSourceConfig,
  examples: [{ title: 'A consumer group', yaml: 'brokers: [ "127.0.0.1:9092" ]\ntopics: [ orders ]\ngroupId: billing' }],
  create: (config) => new KafkaSource(withDefaults(KafkaSourceConfig, config)),
});

export const kafkaSink = defineSink({
  kind: 'kafka',
  summary: 'An idempotent Kafka producer with templated topics and partition keys.',
  config: KafkaSinkConfig,
  examples: [{ title: 'Keyed by customer', yaml: 'brokers: [ "127.0.0.1:9092" ]\ntopic: "orders.${region}"\nkey: "${customerId}"' }],
  create: (config) => new KafkaSink(withDefaults(KafkaSinkConfig, config)),
});

export function register(registry: Registry): void {
  registry.registerSource(kafkaSource).registerSink(kafkaSink);
}
