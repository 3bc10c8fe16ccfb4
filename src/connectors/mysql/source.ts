import { Type } from '@sinclair/typebox';
import { defineSource } from '../../registry/registry.js';
import { sqlPollFields } from '../sql-common.js';

export const MysqlSourceConfig = Type.Object(
  {
    url: Type.String({ minLength: 1, description: 'Connection URL, `mysql://user:password@host:3306/db`.' }),
    ...sqlPollFields,
  },
  { additionalProperties: false },
);

export const mysqlSource = defineSource({
  kind: 'mysql',
  summary: 'Polls a MySQL or MariaDB table by a cursor column; the checkpoint moves only after the sinks accepted the rows.',
  description:
    'Reads rows in `(cursor, key)` order, `batchSize` at a time; the checkpoint (last cursor and key, as text so DATETIME(6) keeps its microseconds) is committed only after the batch settled. Rows sharing a cursor value are ordered by `key`, so none is skipped. Once caught up it waits `interval` or until the next `schedule` time.',
  config: MysqlSourceConfig,
  examples: [{ title: 'Changed orders every minute', yaml: 'url: mysql://root@127.0.0.1:3306/shop\ntable: orders\ncursor: updated_at\nkey: id\nschedule: "* * * * *"' }],
  async create(config, ctx) {
    const [{ PollingSource }, { createMysqlPool, MysqlDriver }] = await Promise.all([import('../sql-poll.js'), import('./driver.js')]);
    const pool = createMysqlPool({ url: config.url, maxConnections: 1, logger: ctx.logger });
    const driver = new MysqlDriver(pool).forPolling({
      table: config.table,
      cursor: config.cursor,
      key: config.key,
      ...(config.columns ? { columns: config.columns } : {}),
      ...(config.where ? { where: config.where } : {}),
    });
    return new PollingSource(driver, config);
  },
});
