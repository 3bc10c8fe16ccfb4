import { Type } from '@sinclair/typebox';
import { defineSource } from '../../registry/registry.js';
import { sqlPollFields } from '../sql-common.js';

export const PostgresSourceConfig = Type.Object(
  {
    url: Type.String({ minLength: 1, description: 'Connection URL, `postgres://user:password@host:5432/db`.' }),
    ...sqlPollFields,
  },
  { additionalProperties: false },
);

export const postgresSource = defineSource({
  kind: 'postgres',
  summary: 'Polls a PostgreSQL table by a cursor column; the checkpoint moves only after the sinks accepted the rows.',
  description:
    'Reads rows in `(cursor, key)` order, `batchSize` at a time, and emits each batch. The checkpoint (the last cursor and key) is committed only after the batch settled, so a crash reads the batch again (at-least-once). Rows sharing a cursor value are ordered by `key`, so none is skipped between batches. Once caught up it waits `interval` (or until the next `schedule` time). Timestamps are compared at full precision. Rows committed late with an older cursor value than one already read are not seen: use a cursor set at commit (a sequence bumped by a trigger) or the `postgres-cdc` source when that matters.',
  config: PostgresSourceConfig,
  examples: [{ title: 'Changed orders every 30 s', yaml: 'url: postgres://127.0.0.1:5432/shop\ntable: orders\ncursor: updated_at\nkey: id\ninterval: 30s' }],
  async create(config, ctx) {
    const [{ PollingSource }, { createPgPool, PgDriver }] = await Promise.all([import('../sql-poll.js'), import('./driver.js')]);
    const pool = createPgPool({ url: config.url, maxConnections: 1, logger: ctx.logger });
    const driver = new PgDriver(pool).forPolling({
      table: config.table,
      cursor: config.cursor,
      key: config.key,
      ...(config.columns ? { columns: config.columns } : {}),
      ...(config.where ? { where: config.where } : {}),
    });
    return new PollingSource(driver, config);
  },
});
