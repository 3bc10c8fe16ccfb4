import { Type } from '@sinclair/typebox';
import { defineSink } from '../../registry/registry.js';
import { sqlSinkFields } from '../sql-common.js';

export const PostgresSinkConfig = Type.Object(
  {
    url: Type.String({ minLength: 1, description: 'Connection URL, `postgres://user:password@host:5432/db` (use `${secrets.NAME}` for a password).' }),
    ...sqlSinkFields,
  },
  { additionalProperties: false },
);

export const postgresSink = defineSink({
  kind: 'postgres',
  summary: 'Writes messages as rows into a PostgreSQL table: insert, or upsert by key with a conflict policy, one transaction per batch.',
  description:
    'Each batch is one transaction of multi-row `INSERT … ON CONFLICT` statements. A row the database rejects (a constraint, a bad value) is dead-lettered with the database\'s reason and the rest of the batch commits. A lost connection is retried with a fresh one. With `idColumn` (insert) or `mode: upsert`, a redelivered message writes nothing twice.',
  config: PostgresSinkConfig,
  examples: [
    {
      title: 'Upsert, newest version wins',
      yaml: 'url: postgres://127.0.0.1:5432/shop\ntable: orders\nmode: upsert\nkey: id\nonConflict: newest-wins\nversion: updated_at',
    },
    {
      title: 'Append events, idempotent by message id',
      yaml: 'url: postgres://127.0.0.1:5432/shop\ntable: events\nidColumn: message_id\ncolumns: { message_id: $id, kind: type, body: $payload }',
    },
  ],
  async create(config, ctx) {
    // The client library loads when a spec uses it, not with every `ix` command.
    const [{ SqlSink }, { createPgPool, PgDriver, pgWriteSql }] = await Promise.all([import('../sql-sink.js'), import('./driver.js')]);
    const { url, ...common } = config;
    const pool = createPgPool({ url, maxConnections: common.maxConnections, logger: ctx.logger });
    return new SqlSink({ config: common, driver: new PgDriver(pool), build: pgWriteSql, logger: ctx.logger, clock: ctx.clock });
  },
});
