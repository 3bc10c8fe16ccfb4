import type { Registry, ComponentSlot } from './registry.js';
import { syncsSchema } from './sync-schema.js';

export type JsonSchema = Record<string, unknown>;

/** The keyword that marks a component slot in the spec schema (for error messages). */
export const SLOT_KEYWORD = 'x-ix-slot';

/** JSON form of a TypeBox schema (drops TypeBox's symbol keys). */
function plain(schema: unknown): JsonSchema {
  return JSON.parse(JSON.stringify(schema)) as JsonSchema;
}

export function componentSlot(registry: Registry, slot: ComponentSlot, description: string): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  for (const [kind, def] of [...registry.slot(slot)].sort(([a], [b]) => a.localeCompare(b))) {
    const schema = plain(def.config);
    schema['description'] = def.description ? `${def.summary}\n\n${def.description}` : def.summary;
    properties[kind] = schema;
  }
  return {
    type: 'object',
    description,
    [SLOT_KEYWORD]: slot,
    minProperties: 1,
    maxProperties: 1,
    additionalProperties: false,
    properties,
  };
}

export const duration = {
  anyOf: [
    { type: 'string', pattern: '^\\s*(\\d+(\\.\\d+)?(ms|sec|min|s|m|h|d))+\\s*$|^\\d+$' },
    { type: 'integer', minimum: 0 },
  ],
  description: 'A duration: 200ms, 5s, 5m, 2h, 1d, or milliseconds as a number.',
};

/** The flow's error policy: bounded retry with backoff, then the dead-letter queue. */
export const errorPolicySchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'What happens when a step or sink fails: bounded retries with backoff, then the DLQ.',
  properties: {
    retry: {
      type: 'object',
      additionalProperties: false,
      properties: {
        attempts: { type: 'integer', minimum: 1, maximum: 1000, default: 5, description: 'Tries in all, the first included.' },
        backoff: { enum: ['exponential', 'fixed'], default: 'exponential' },
        initial: { ...duration, default: '100ms', description: 'Delay before the second try.' },
        max: { ...duration, default: '30s', description: 'Longest delay between tries.' },
        jitter: { type: 'boolean', default: true, description: 'Full jitter on each delay.' },
      },
      default: {},
    },
    deadLetter: {
      type: 'boolean',
      default: true,
      description: 'Dead-letter what exhausts its retries. With false the flow stops instead (and nothing is acknowledged).',
    },
  },
  default: {},
};

export function flowSchema(registry: Registry): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['source'],
    properties: {
      description: { type: 'string' },
      source: componentSlot(registry, 'source', 'Where the flow reads from: exactly one source kind.'),
      steps: {
        type: 'array',
        description: 'Steps run in order on each message.',
        items: componentSlot(registry, 'step', 'A step: exactly one step kind.'),
      },
      sink: componentSlot(registry, 'sink', 'Where the flow writes: exactly one sink kind.'),
      sinks: {
        type: 'array',
        minItems: 1,
        description: 'Several sinks: every message goes to each (fan-out); it settles when all accepted it.',
        items: componentSlot(registry, 'sink', 'A sink: exactly one sink kind.'),
      },
      concurrency: { type: 'integer', minimum: 1, maximum: 4096, default: 4, description: 'Batches in flight at once.' },
      batchSize: { type: 'integer', minimum: 1, maximum: 100000, default: 500, description: 'Messages per batch.' },
      order: {
        enum: ['none', 'key'],
        default: 'none',
        description:
          'Per-key order. With key, messages with the same key are processed and handed to the sinks one after another in arrival order (a message being retried holds back the later ones of its key) while different keys run concurrently. The key is the message key, or orderBy. Messages without a key are not ordered.',
      },
      orderBy: { type: 'string', description: 'An expression giving the ordering key (for example customer.id); implies order: key. Default: the message key ($key).' },
      errors: errorPolicySchema,
    },
  };
}

/** The spec's JSON Schema, generated from what is registered. `ix schema` prints it. */
export function buildSpecSchema(registry: Registry): JsonSchema {
  const sections: Record<string, JsonSchema> = {};
  for (const [key, def] of registry.sections) {
    sections[key] = {
      type: 'object',
      description: def.description ? `${def.summary}\n\n${def.description}` : def.summary,
      propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_.-]*$' },
      additionalProperties: plain(def.entry),
    };
  }
  const listen = { type: 'string', pattern: '^(\\[[0-9a-fA-F:]+\\]|[^:\\s]+):\\d{1,5}$', description: 'host:port' };
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://interchange.dev/schema/spec-v1.json',
    title: 'Interchange integration spec, version 1',
    type: 'object',
    additionalProperties: false,
    required: ['version'],
    properties: {
      version: { const: 1, description: 'The spec format version.' },
      name: { type: 'string', description: 'The integration’s name.' },
      description: { type: 'string' },
      secrets: {
        type: 'object',
        description: 'Secret references: env:VAR or file:PATH. Use them as ${secrets.NAME}; values never appear in logs or errors.',
        propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
        additionalProperties: { type: 'string', pattern: '^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$' },
      },
      store: {
        type: 'string',
        description: 'Durable state: sqlite:PATH (default sqlite:.interchange/state.db beside the spec).',
      },
      http: {
        type: 'object',
        additionalProperties: false,
        description: 'The public listener (webhooks, ingest).',
        properties: { listen: { ...listen, default: '127.0.0.1:8080' } },
        default: {},
      },
      admin: {
        type: 'object',
        additionalProperties: false,
        description: 'The admin listener: /health/live, /health/ready, /metrics.',
        properties: {
          enabled: { type: 'boolean', default: true },
          listen: { ...listen, default: '127.0.0.1:8081' },
        },
        default: {},
      },
      shutdown: {
        type: 'object',
        additionalProperties: false,
        properties: { drainTimeout: { ...duration, default: '10s', description: 'How long to drain in-flight work on SIGTERM.' } },
        default: {},
      },
      ...sections,
      flows: {
        type: 'object',
        minProperties: 1,
        description: 'The flows, by name.',
        propertyNames: { pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' },
        additionalProperties: flowSchema(registry),
      },
      syncs: syncsSchema(registry),
    },
  };
}
