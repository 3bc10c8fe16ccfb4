import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

/**
 * A client library loaded on its first use instead of at start-up. Every connector is
 * registered in every process, and importing all their libraries (MQTT, Kafka, Redis, MySQL,
 * NATS, AMQP, GraphQL, logical replication) cost about a second of CPU and tens of MB before
 * the first record, for a spec that uses none of them. Only for CommonJS entry points: the
 * result is the package's `module.exports`.
 */
export function lazyModule<T>(id: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= load(id) as T);
}
