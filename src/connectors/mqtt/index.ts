import type { Registry } from '../../registry/registry.js';
import { defineSink, defineSource } from '../../registry/registry.js';
import { withDefaults } from '../broker-kit.js';
import { sharedOnly } from './client-id.js';
import { MqttSinkConfig, MqttSourceConfig } from './config.js';
import { MqttSink } from './sink.js';
import { MqttSource } from './source.js';

export { MqttSink, MqttSinkConfig, MqttSource, MqttSourceConfig };

export const mqttSource = defineSource({
  cluster: (config) => (sharedOnly(config.topics) ? 'every-worker' : 'leader'),
  clusterDoc: 'when every topic is a shared subscription (`$share/<group>/<filter>`, MQTT 5) it runs on every worker, which share the messages; otherwise on one leader worker at a time, since each subscriber would receive every message.',
  kind: 'mqtt',
  summary: 'Subscribes to MQTT topic filters with QoS 0/1/2 and a persistent session; acks after settle.',
  config: MqttSourceConfig,
  examples: [{ title: 'A persistent QoS 1 subscription', yaml: 'url: mqtt://127.0.0.1:1883\nclientId: orders-worker\ntopics: [ "orders/+/created" ]\nqos: 1' }],
  create: (config) => new MqttSource(withDefaults(MqttSourceConfig, config)),
});

export const mqttSink = defineSink({
  kind: 'mqtt',
  summary: 'Publishes to MQTT topics templated from the message, waiting for the broker\'s acks.',
  config: MqttSinkConfig,
  examples: [{ title: 'Per-region topics, QoS 1', yaml: 'topic: "orders/${region}"\nqos: 1' }],
  create: (config) => new MqttSink(withDefaults(MqttSinkConfig, config)),
});

export function register(registry: Registry): void {
  registry.registerSource(mqttSource).registerSink(mqttSink);
}
