import { Type } from '@sinclair/typebox';
import { defineSink } from '../../registry/registry.js';
import { sqlSinkFields } from '../sql-common.js';

export const MysqlSinkConfig = Type.Object(
  {
    url: Type.String({ minLength: 1, description: 'Connection URL, `mysql://user:password@host:3306/db` (use `${secrets.NAME}` for a password).' }),
    ...sqlSinkFields,
  },
  { additionalProperties: false },
);

export const mysqlSink = defineSink({
  kind: 'mysql',
  summary: 'Writes messages as rows into a MySQL or MariaDB table: insert, or upsert by key with a conflict policy, one transaction per batch.',
  description:
    'Each batch is one transaction of multi-row `INSERT … ON DUPLICATE KEY UPDATE` statements (InnoDB tables). A row the server rejects is dead-lettered with its reason and the rest of the batch commits; a lost connection is retried with a fresh one. MySQL resolves a conflict on any unique index, so give the table no unique index other than the key (and `idColumn`).',
  config: MysqlSinkConfig,
  examples: [{ title: 'Upsert, newest version wins', yaml: 'url: mysql://root@127.0.0.1:3306/shop\ntable: orders\nmode: upsert\nkey: id\nonConflict: newest-wins\nversion: updated_at' }],
  async create(config, ctx) {
    // The client library loads when a spec uses it, not with every `ix` command.
    const [{ SqlSink }, { createMysqlPool, MysqlDriver, mysqlWriteSql }] = await Promise.all([import('../sql-sink.js'), import('./driver.js')]);
    const { url, ...common } = config;
    const pool = createMysqlPool({ url, maxConnections: common.maxConnections, logger: ctx.logger });
    return new SqlSink({ config: common, driver: new MysqlDriver(pool), build: mysqlWriteSql, logger: ctx.logger, clock: ctx.clock });
  },
});
