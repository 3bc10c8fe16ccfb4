import type { Registry } from '../../registry/registry.js';
import { fileSink } from './file-sink.js';
import { fileSource } from './file-source.js';

export function register(registry: Registry): void {
  registry.registerSource(fileSource);
  registry.registerSink(fileSink);
}
