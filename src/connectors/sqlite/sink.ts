import { Type } from '@sinclair/typebox';
import { isAbsolute, resolve } from 'node:path';
import { defineSink } from '../../registry/registry.js';
import { sqlSinkFields } from '../sql-common.js';
import { SqlSink } from '../sql-sink.js';
import { SqliteDriver, sqliteWriteSql } from './driver.js';

export const SqliteSinkConfig = Type.Object(
  {
    path: Type.String({ minLength: 1, description: 'Database file; relative to the spec file.' }),
    ...sqlSinkFields,
  },
  { additionalProperties: false },
);

export const sqliteSink = defineSink({
  kind: 'sqlite',
  summary: 'Writes messages as rows into a SQLite table: insert, or upsert by key with a conflict policy, one transaction per batch.',
  description:
    'Each batch is one `BEGIN IMMEDIATE` transaction of multi-row `INSERT … ON CONFLICT` statements (WAL journal). A row SQLite rejects (a constraint, a type mismatch in a STRICT table) is dead-lettered with SQLite\'s reason and the rest commits; a busy database is retried.',
  config: SqliteSinkConfig,
  examples: [{ title: 'Upsert by id', yaml: 'path: ./data/shop.db\ntable: orders\nmode: upsert\nkey: id' }],
  create(config, ctx) {
    const { path, ...common } = config;
    const driver = SqliteDriver.open(isAbsolute(path) ? path : resolve(ctx.baseDir, path));
    return new SqlSink({ config: common, driver, build: sqliteWriteSql, logger: ctx.logger, clock: ctx.clock });
  },
});
