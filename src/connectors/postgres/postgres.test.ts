import pg from 'pg';
import { describe } from 'vitest';
import { serviceAvailable } from '../../testing/services.js';
import { testSinkContext } from '../../testing/sink-contract.js';
import { sqlSuite, type SqlKit } from '../../testing/sql-suite.js';
import { postgresSink } from './sink.js';
import { postgresSource } from './source.js';

export const PG_URL = process.env['IX_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

async function pgKit(): Promise<SqlKit> {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const q = (i: string): string => `"${i.replace(/"/g, '""')}"`;
  const u = new URL(PG_URL);
  return {
    name: 'postgres',
    exec: async (sql) => {
      await pool.query(sql);
    },
    rows: async (sql) => (await pool.query(sql)).rows as Record<string, unknown>[],
    q,
    types: { json: 'jsonb', ts: 'timestamptz(6)', str: 'text', int: 'integer' },
    tsLiteral: (sec, us) => `'${new Date(sec * 1000).toISOString().slice(0, 19)}.${String(us).padStart(6, '0')}+00'`,
    connection: { url: PG_URL },
    address: { host: u.hostname, port: Number(u.port || 5432) },
    via: (port) => {
      const v = new URL(PG_URL);
      v.port = String(port);
      return { url: v.toString() };
    },
    createSink: async (config) => postgresSink.create({ url: PG_URL, ...config } as never, testSinkContext()),
    createSource: async (config) => postgresSource.create({ url: PG_URL, ...config } as never, testSinkContext()),
    close: () => pool.end(),
  };
}

describe.skipIf(!serviceAvailable('postgres'))('postgres connector (local PostgreSQL, db test)', () => {
  sqlSuite(pgKit);
});
