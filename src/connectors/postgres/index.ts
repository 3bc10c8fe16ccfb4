import type { Registry } from '../../registry/registry.js';
import { postgresCdcSource } from './cdc-source.js';
import { postgresSink } from './sink.js';
import { postgresSource } from './source.js';

/** The PostgreSQL sink, polling source and change-data-capture source (the pg client loads on first use). */
export function register(registry: Registry): void {
  registry.registerSink(postgresSink).registerSource(postgresSource).registerSource(postgresCdcSource);
}
