import mysql from 'mysql2/promise';
import { describe } from 'vitest';
import { serviceAvailable } from '../../testing/services.js';
import { testSinkContext } from '../../testing/sink-contract.js';
import { sqlSuite, type SqlKit } from '../../testing/sql-suite.js';
import { mysqlSink } from './sink.js';
import { mysqlSource } from './source.js';

const MYSQL_URL = process.env['IX_TEST_MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/test';

async function mysqlKit(): Promise<SqlKit> {
  const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 2, timezone: 'Z' });
  const u = new URL(MYSQL_URL);
  return {
    name: 'mysql',
    exec: async (sql) => {
      await pool.query(sql);
    },
    rows: async (sql) => (await pool.query(sql))[0] as Record<string, unknown>[],
    q: (i) => `\`${i.replace(/`/g, '``')}\``,
    types: { json: 'JSON', ts: 'DATETIME(6)', str: 'VARCHAR(200)', int: 'INT' },
    tsLiteral: (sec, us) => `'${new Date(sec * 1000).toISOString().slice(0, 19).replace('T', ' ')}.${String(us).padStart(6, '0')}'`,
    connection: { url: MYSQL_URL },
    address: { host: u.hostname, port: Number(u.port || 3306) },
    via: (port) => {
      const v = new URL(MYSQL_URL);
      v.port = String(port);
      return { url: v.toString() };
    },
    createSink: async (config) => mysqlSink.create({ url: MYSQL_URL, ...config } as never, testSinkContext()),
    createSource: async (config) => mysqlSource.create({ url: MYSQL_URL, ...config } as never, testSinkContext()),
    close: () => pool.end(),
  };
}

describe.skipIf(!serviceAvailable('mariadb'))('mysql connector (local MariaDB, db test)', () => {
  sqlSuite(mysqlKit);
});
