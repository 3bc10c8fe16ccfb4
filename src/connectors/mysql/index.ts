import type { Registry } from '../../registry/registry.js';
import { mysqlSink } from './sink.js';
import { mysqlSource } from './source.js';

/** The MySQL/MariaDB sink and polling source (the mysql2 client loads on first use). */
export function register(registry: Registry): void {
  registry.registerSink(mysqlSink).registerSource(mysqlSource);
}
