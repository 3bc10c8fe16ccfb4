import { Type } from '@sinclair/typebox';
import { isAbsolute, resolve } from 'node:path';
import { defineSource } from '../../registry/registry.js';
import { sqlPollFields } from '../sql-common.js';
import { PollingSource } from '../sql-poll.js';
import { SqliteDriver } from './driver.js';

export const SqliteSourceConfig = Type.Object(
  {
    path: Type.String({ minLength: 1, description: 'Database file; relative to the spec file.' }),
    ...sqlPollFields,
  },
  { additionalProperties: false },
);

export const sqliteSource = defineSource({
  kind: 'sqlite',
  summary: 'Polls a SQLite table by a cursor column; the checkpoint moves only after the sinks accepted the rows.',
  description:
    'Reads rows in `(cursor, key)` order, `batchSize` at a time; the checkpoint is committed only after the batch settled. Rows sharing a cursor value are ordered by `key`, so none is skipped.',
  config: SqliteSourceConfig,
  examples: [{ title: 'New events', yaml: 'path: ./data/app.db\ntable: events\ncursor: seq\nkey: seq\ninterval: 1s' }],
  create(config, ctx) {
    const driver = SqliteDriver.open(isAbsolute(config.path) ? config.path : resolve(ctx.baseDir, config.path)).forPolling({
      table: config.table,
      cursor: config.cursor,
      key: config.key,
      ...(config.columns ? { columns: config.columns } : {}),
      ...(config.where ? { where: config.where } : {}),
    });
    return new PollingSource(driver, config);
  },
});
