import type { Registry } from '../../registry/registry.js';
import { sqliteSink } from './sink.js';
import { sqliteSource } from './source.js';

/** The SQLite sink and polling source. */
export function register(registry: Registry): void {
  registry.registerSink(sqliteSink).registerSource(sqliteSource);
}
