import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSync } from '../app/sync.js';
import { serviceAvailable } from '../testing/services.js';
import { uniqueName } from '../testing/sql-suite.js';

const MYSQL_URL = process.env['IX_TEST_MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/test';

/** SQLite → MariaDB incrementally, and MariaDB → SQLite in full with the vanished rows deleted. */
describe.skipIf(!serviceAvailable('mariadb'))('sync: SQLite and MariaDB as source and target', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ix-sync-db-'));
  const my = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 2 });
  const table = uniqueName('ix_sync_my');
  const src = new Database(join(dir, 'src.db'));
  const dst = new Database(join(dir, 'dst.db'));
  const spec = join(dir, 'spec.yaml');

  beforeAll(async () => {
    src.exec('CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT NOT NULL)');
    dst.exec('CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT NOT NULL)');
    const ins = src.prepare('INSERT INTO contacts VALUES (?, ?, ?)');
    for (let i = 1; i <= 120; i++) ins.run(i, `name ${i}`, `2026-01-01T00:00:${String(i % 60).padStart(2, '0')}.${String(i).padStart(3, '0')}Z`);
    await my.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, name VARCHAR(100), updated_at VARCHAR(40) NOT NULL) ENGINE=InnoDB`);
    writeFileSync(
      spec,
      `version: 1
store: sqlite:./state.db
syncs:
  up:
    target: { mysql: { url: "${MYSQL_URL}", maxConnections: 2 } }
    streams:
      contacts:
        from: { sqlite: { path: src.db, table: contacts } }
        table: ${table}
        key: id
        mode: incremental
        cursor: updated_at
        batchSize: 50
  down:
    target: { sqlite: { path: dst.db } }
    streams:
      contacts:
        from: { mysql: { url: "${MYSQL_URL}", table: ${table} } }
        key: id
        mode: full
        batchSize: 50
`,
    );
  });
  afterAll(async () => {
    await my.query(`DROP TABLE IF EXISTS ${table}`);
    await my.end();
    src.close();
    dst.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const sqliteRows = (db: Database.Database): unknown[] => db.prepare('SELECT id, name, updated_at FROM contacts ORDER BY id').all();
  const mysqlRows = async (): Promise<unknown[]> => (await my.query(`SELECT id, name, updated_at FROM ${table} ORDER BY id`))[0] as unknown[];

  it('targets equal their sources after each run', async () => {
    const o = await openSync({ specFile: spec, logLevel: 'error' });
    try {
      expect((await o.service.run('up')).status).toBe('ok');
      expect(await mysqlRows()).toEqual(sqliteRows(src));
      expect((await o.service.run('down')).status).toBe('ok');
      expect(sqliteRows(dst)).toEqual(await mysqlRows());

      src.prepare("UPDATE contacts SET name = 'changed', updated_at = '2026-02-01T00:00:00.000Z' WHERE id IN (3, 4)").run();
      src.prepare("INSERT INTO contacts VALUES (121, 'new', '2026-02-01T00:00:01.000Z')").run();
      const up = await o.service.run('up');
      expect(up.totals.read).toBe(3);
      expect(await mysqlRows()).toEqual(sqliteRows(src));

      await my.query(`DELETE FROM ${table} WHERE id IN (10, 11)`);
      const down = await o.service.run('down');
      expect(down.totals.vanished).toBe(2);
      expect(sqliteRows(dst)).toEqual(await mysqlRows());

      // a crash after the sweep committed (its staging table dropped) but before the checkpoint moved
      const stats = { read: 0, written: 0, deleted: 0, unchanged: 0, conflicted: 0, failed: 0, vanished: 0, backwards: 0 };
      await o.store.setCheckpoint('sync/down/contacts', JSON.stringify({ run: { id: 'r', kind: 'full', staged: true, sweeping: true, position: { c: '999999', k: '999999' }, stats } }));
      const resumed = await o.service.run('down');
      expect(resumed.streams[0]).toMatchObject({ status: 'ok', vanished: 0 });
      expect(sqliteRows(dst)).toEqual(await mysqlRows());
    } finally {
      await o.close();
    }
  }, 60_000);
});
