import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe } from 'vitest';
import { testSinkContext } from '../../testing/sink-contract.js';
import { sqlSuite, type SqlKit } from '../../testing/sql-suite.js';
import { sqliteSink } from './sink.js';
import { sqliteSource } from './source.js';

const dir = mkdtempSync(join(tmpdir(), 'ix-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function sqliteKit(): Promise<SqlKit> {
  const path = join(dir, 'test.db');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  return {
    name: 'sqlite',
    exec: async (sql) => {
      db.exec(sql);
    },
    rows: async (sql) => db.prepare(sql).all() as Record<string, unknown>[],
    q: (i) => `"${i.replace(/"/g, '""')}"`,
    types: { json: 'TEXT', ts: 'TEXT', str: 'TEXT', int: 'INTEGER' },
    tsLiteral: (sec, us) => `'${new Date(sec * 1000).toISOString().slice(0, 19)}.${String(us).padStart(6, '0')}Z'`,
    connection: { path },
    createSink: async (config) => sqliteSink.create({ path, ...config } as never, testSinkContext()),
    createSource: async (config) => sqliteSource.create({ path, ...config } as never, testSinkContext()),
    close: async () => {
      db.close();
    },
  };
}

describe('sqlite connector (embedded)', () => {
  sqlSuite(sqliteKit);
});
