import type { Registry } from '../registry/registry.js';
import { register as file } from './file/index.js';
import { register as generate } from './generate/index.js';
import { register as http } from './http/index.js';
import { register as httpServer } from './http-server/index.js';
import { register as mysql } from './mysql/index.js';
import { register as postgres } from './postgres/index.js';
import { register as sqlite } from './sqlite/index.js';
import { register as kafka } from './kafka/index.js';
import { register as mqtt } from './mqtt/index.js';
import { register as nats } from './nats/index.js';
import { register as rabbitmq } from './rabbitmq/index.js';
import { register as redis } from './redis/index.js';
import { register as stdio } from './stdio/index.js';
import { register as webhook } from './webhook/index.js';

/** Registers every built-in connector. Each connector folder exports its own `register`. */
export function registerConnectors(registry: Registry): void {
  file(registry);
  generate(registry);
  http(registry);
  httpServer(registry);
  kafka(registry);
  mqtt(registry);
  nats(registry);
  rabbitmq(registry);
  redis(registry);
  stdio(registry);
  webhook(registry);
  postgres(registry);
  mysql(registry);
  sqlite(registry);
}
