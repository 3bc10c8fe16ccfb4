import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/logger.js';
import { openTarget } from './connect.js';
import { SyncTarget, supersededByDeletes, type TargetItem } from './target.js';

const item = (index: number, id: number, del = false, name = `n${index}`): TargetItem => ({ index, row: del ? { id } : { id, name, v: index }, del, key: String(id) });

describe('supersededByDeletes', () => {
  it('keeps batch order: what precedes a key\u2019s last delete is void, what follows it stays', () => {
    const batch = [item(0, 1), item(1, 2, true), item(2, 1, true), item(3, 2), item(4, 3), item(5, 3, true), item(6, 3)];
    expect(supersededByDeletes(batch).map((i) => i.index)).toEqual([1, 2, 3, 5, 6]);
  });
  it('returns a batch without deletes as it is', () => {
    const batch = [item(0, 1), item(1, 1)];
    expect(supersededByDeletes(batch)).toBe(batch);
  });
});

/**
 * Regression: change events for one key in one batch (an insert then a delete) were applied
 * as "all deletes, then all upserts", so a row deleted at the source stayed in the target.
 */
describe('SyncTarget.apply with a change and a delete of one key in one batch', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ix-sync-target-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const conflict of ['source-wins', 'newest-wins'] as const) {
    it(`ends as the events' order says (${conflict})`, async () => {
      const conn = await openTarget({ kind: 'sqlite', config: { path: join(dir, `${conflict}.db`) } } as never, dir, silentLogger);
      await conn.driver.query('CREATE TABLE t (id integer PRIMARY KEY, name text, v integer)');
      await conn.driver.query("INSERT INTO t (id, name, v) VALUES (1, 'old', 0), (2, 'old', 0)");
      const target = new SyncTarget(conn, { stream: 's', table: 't', key: ['id'], write: 'upsert', conflict, version: 'v', vanished: 'keep', strict: true, logger: silentLogger });
      await target.prepare();
      // key 1: updated, then deleted; key 2: deleted, then inserted again; key 3: inserted, deleted, inserted
      const batch = [item(1, 1), item(2, 1, true), item(3, 2, true), item(4, 2, false, 'again'), item(5, 3), item(6, 3, true), item(7, 3, false, 'last')];
      const res = await target.apply(batch, undefined);
      expect(res.failed.size).toBe(0);
      const rows = await conn.driver.query('SELECT id, name FROM t ORDER BY id');
      expect(rows.rows).toEqual([
        { id: 2, name: 'again' },
        { id: 3, name: 'last' },
      ]);
      await target.close();
    });
  }
});
