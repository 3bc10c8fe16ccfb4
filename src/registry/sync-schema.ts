import type { Registry } from './registry.js';
import { componentSlot, duration, type JsonSchema } from './schema.js';

/** One choice among kinds, like a component slot: `{ postgres: { … } }`. */
function kinds(description: string, slot: string, properties: Record<string, JsonSchema>): JsonSchema {
  return { type: 'object', description, 'x-ix-slot': slot, minProperties: 1, maxProperties: 1, additionalProperties: false, properties };
}

const str = (description: string): JsonSchema => ({ type: 'string', minLength: 1, description });
const sqlRead = (conn: Record<string, JsonSchema>, required: string[]): JsonSchema => ({
  type: 'object',
  additionalProperties: false,
  required: [...required, 'table'],
  properties: {
    ...conn,
    table: str('Table (or view) to read; `schema.table` is accepted.'),
    where: str("An extra SQL condition, e.g. `status <> 'draft'`."),
    columns: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description: 'Columns to read; all by default.' },
  },
});
const url = str('Connection URL (use `${secrets.NAME}` for a password).');
const path = str('Database file, relative to the spec.');
const maxConnections = { type: 'integer', minimum: 1, maximum: 100, default: 4, description: "Connections this stream may hold on the target (the target's connection limit)." };

export const syncFromSchema: JsonSchema = kinds('Where a stream reads (pull): exactly one kind.', 'sync source', {
  http: {
    type: 'object',
    additionalProperties: false,
    required: ['service', 'endpoint'],
    description: "A paginated endpoint of a REST service in `services:`; its pagination, rate limits, retries and errors table apply.",
    properties: {
      service: str('The service name in `services:`.'),
      endpoint: str('The endpoint name in that service.'),
      cursorParam: str('Incremental: the query parameter that receives the cursor (e.g. `updated_since`); records are still filtered by the cursor on arrival.'),
      toParam: str('Backfill `--to`: the query parameter that receives the end of the range.'),
      query: { type: 'object', additionalProperties: true, description: 'Query parameters added to every call.' },
      total: str('A path in the first page to the total record count (for the progress ETA), e.g. `$.total`.'),
    },
  },
  postgres: sqlRead({ url }, ['url']),
  mysql: sqlRead({ url }, ['url']),
  sqlite: sqlRead({ path }, ['path']),
});

export const syncTargetSchema: JsonSchema = kinds('Where a stream writes: a database and how to connect.', 'sync target', {
  postgres: { type: 'object', additionalProperties: false, required: ['url'], properties: { url, maxConnections } },
  mysql: { type: 'object', additionalProperties: false, required: ['url'], properties: { url, maxConnections } },
  sqlite: { type: 'object', additionalProperties: false, required: ['path'], properties: { path } },
});

const keyList = {
  anyOf: [
    { type: 'string', minLength: 1 },
    { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
  ],
  description: 'The primary key: a field, or several for a composite key.',
};

function streamSchema(registry: Registry): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['key', 'mode'],
    properties: {
      from: syncFromSchema,
      events: componentSlot(registry, 'source', 'Realtime modes: where change events come from (webhook, broker, postgres-cdc …); each event is one record.'),
      target: syncTargetSchema,
      table: str('Target table (default: the stream name).'),
      key: keyList,
      mode: {
        enum: ['full', 'incremental', 'realtime', 'backfill-realtime'],
        description: '`full` reads everything each run; `incremental` reads changes since the cursor; `realtime` applies events; `backfill-realtime` copies everything, then applies events.',
      },
      write: { enum: ['upsert', 'append'], default: 'upsert', description: '`upsert` keeps one row per key; `append` adds every record as a row.' },
      cursor: str('Incremental: the field that grows with every change (an updated_at timestamp, a sequence).'),
      lookback: { ...duration, description: 'Incremental: re-read this far behind the checkpoint each run, for late updates (a duration for timestamp cursors, a number for numeric ones).' },
      vanished: {
        anyOf: [
          { enum: ['delete', 'keep'] },
          { type: 'object', additionalProperties: false, required: ['mark'], properties: { mark: str('A timestamp column set when the row vanished (and cleared when it comes back).') } },
        ],
        default: 'delete',
        description: 'Full upsert runs: what happens to target rows whose key the source no longer has.',
      },
      deleted: {
        type: 'object',
        additionalProperties: false,
        required: ['field'],
        description: 'Tombstones: a record whose `field` equals `equals` deletes the row with its key.',
        properties: { field: str('The field that marks a deleted record.'), equals: { default: true, description: 'The value that means deleted.' } },
      },
      conflict: {
        anyOf: [
          { enum: ['newest-wins', 'source-wins', 'target-wins'] },
          {
            type: 'object',
            additionalProperties: false,
            required: ['merge'],
            properties: {
              merge: {
                type: 'object',
                additionalProperties: false,
                required: ['target'],
                properties: { target: { type: 'array', items: { type: 'string', minLength: 1 }, description: "Fields that keep the target's value; all others take the source's." } },
              },
            },
          },
          { type: 'object', additionalProperties: false, required: ['expression'], properties: { expression: str('True when the source record replaces the target row; over `source.*` and `target.*`.') } },
        ],
        default: 'source-wins',
        description: 'When the target row changed on its own since the sync last wrote it: `newest-wins` by `version`, `source-wins`, `target-wins`, `{ merge: { target: [fields] } }`, or `{ expression }`.',
      },
      version: str('The version or timestamp field `newest-wins` compares and conflict detection tracks.'),
      columns: { type: 'object', additionalProperties: { type: 'string', minLength: 1 }, description: 'Column ← record field (a dotted path). Without it, the fields named like columns are written.' },
      batchSize: { type: 'integer', minimum: 1, maximum: 100000, default: 1000, description: 'Records per target transaction (and checkpoint).' },
      strict: { type: 'boolean', default: true, description: 'Stop the stream before writing when a record has fields the target table lacks.' },
    },
  };
}

/** The `syncs:` section: jobs of streams with a declared key, mode, cursor and conflict policy. */
export function syncsSchema(registry: Registry): JsonSchema {
  return {
    type: 'object',
    description: 'Data synchronization jobs, by name: `ix sync run NAME`, or on their schedule under `ix run`.',
    propertyNames: { pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' },
    additionalProperties: {
      type: 'object',
      additionalProperties: false,
      required: ['streams'],
      properties: {
        description: { type: 'string' },
        schedule: str('A cron expression: run at these times under `ix run`.'),
        every: { ...duration, description: 'Run this often under `ix run` (instead of `schedule`).' },
        concurrency: { type: 'integer', minimum: 1, maximum: 64, default: 4, description: 'Streams of this job that run at once.' },
        target: syncTargetSchema,
        streams: {
          type: 'object',
          minProperties: 1,
          propertyNames: { pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' },
          additionalProperties: streamSchema(registry),
        },
      },
    },
  };
}
