import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSync } from '../app/sync.js';
import { serviceAvailable } from '../testing/services.js';
import { uniqueName } from '../testing/sql-suite.js';

const A_URL = process.env['IX_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const B_URL = A_URL.replace(/\/[^/]*$/, '/postgres');

/** Two databases kept in sync both ways: concurrent edits resolved by policy, no ping-pong. */
describe.skipIf(!serviceAvailable('postgres'))('sync: two-way between two databases', () => {
  const a = new pg.Pool({ connectionString: A_URL, max: 2 });
  const b = new pg.Pool({ connectionString: B_URL, max: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'ix-sync-2way-'));
  const ta = uniqueName('ix_2w_a');
  const tb = uniqueName('ix_2w_b');
  const src = uniqueName('ix_pol_src');
  const pols = ['newest', 'target', 'merge', 'expr'].map((p) => ({ p, t: uniqueName(`ix_pol_${p}`) }));
  const spec = join(dir, 'spec.yaml');
  const storeSchema = uniqueName('ix_sync_store');
  const ddl = (t: string): string => `CREATE TABLE "${t}" (id integer PRIMARY KEY, name text, notes text, updated_at timestamptz NOT NULL)`;

  beforeAll(async () => {
    await a.query(ddl(ta));
    await b.query(ddl(tb));
    await a.query(ddl(src));
    for (const { t } of pols) await b.query(ddl(t));
    const stream = (from: string, fromTable: string, to: string, table: string, conflict: string): string => `
        from: { postgres: { url: "${from}", table: ${fromTable} } }
        target: { postgres: { url: "${to}", maxConnections: 2 } }
        table: ${table}
        key: id
        mode: incremental
        cursor: updated_at
        version: updated_at
        conflict: ${conflict}`;
    writeFileSync(
      spec,
      `version: 1
store: sqlite:./state.db
syncs:
  contacts:
    streams:
      a-to-b:${stream(A_URL, ta, B_URL, tb, 'newest-wins')}
      b-to-a:${stream(B_URL, tb, A_URL, ta, 'newest-wins')}
  policies:
    streams:
      newest:${stream(A_URL, src, B_URL, pols[0]?.t as string, 'newest-wins')}
      target:${stream(A_URL, src, B_URL, pols[1]?.t as string, 'target-wins')}
      merge:${stream(A_URL, src, B_URL, pols[2]?.t as string, '{ merge: { target: [notes] } }')}
      expr:${stream(A_URL, src, B_URL, pols[3]?.t as string, `{ expression: "target.notes != 'pinned'" }`)}
`,
    );
  });
  afterAll(async () => {
    await a.query(`DROP TABLE IF EXISTS "${ta}", "${src}"`);
    await a.query(`DROP SCHEMA IF EXISTS "${storeSchema}" CASCADE`);
    await b.query(`DROP TABLE IF EXISTS "${tb}", ${pols.map(({ t }) => `"${t}"`).join(', ')}`);
    await a.end();
    await b.end();
    rmSync(dir, { recursive: true, force: true });
  });

  const dump = async (pool: pg.Pool, t: string): Promise<unknown[]> =>
    (await pool.query(`SELECT id, name, notes, updated_at FROM "${t}" ORDER BY id`)).rows.map((r: { updated_at: Date }) => ({ ...r, updated_at: r.updated_at.toISOString() }));

  it('concurrent edits on both sides end equal under newest-wins, conflicts counted, nothing synced back and forth', async () => {
    await a.query(`INSERT INTO "${ta}" SELECT i, 'name ' || i, NULL, timestamptz '2026-01-01' + i * interval '1 second' FROM generate_series(1, 20) i`);
    const o = await openSync({ specFile: spec, logLevel: 'error' });
    try {
      const r1 = await o.service.run('contacts');
      expect(r1.status, JSON.stringify(r1)).toBe('ok');
      expect(await dump(b, tb)).toEqual(await dump(a, ta));
      const r1b = await o.service.run('contacts');
      expect(r1b.totals.written, JSON.stringify(r1b)).toBe(0);

      // concurrent edits: row 1 changed in A then later in B; row 3 in B then later in A; row 5 only in A, row 7 only in B
      await a.query(`UPDATE "${ta}" SET name = 'A1', updated_at = timestamptz '2026-02-01 00:00:01' WHERE id = 1`);
      await b.query(`UPDATE "${tb}" SET name = 'B1', updated_at = timestamptz '2026-02-01 00:00:02' WHERE id = 1`);
      await b.query(`UPDATE "${tb}" SET name = 'B3', updated_at = timestamptz '2026-02-01 00:00:01' WHERE id = 3`);
      await a.query(`UPDATE "${ta}" SET name = 'A3', updated_at = timestamptz '2026-02-01 00:00:02' WHERE id = 3`);
      await a.query(`UPDATE "${ta}" SET name = 'A5', updated_at = timestamptz '2026-02-01 00:00:03' WHERE id = 5`);
      await b.query(`UPDATE "${tb}" SET name = 'B7', updated_at = timestamptz '2026-02-01 00:00:03' WHERE id = 7`);
      const r2 = await o.service.run('contacts');
      expect(r2.status).toBe('ok');
      const rowsA = await dump(a, ta);
      expect(await dump(b, tb)).toEqual(rowsA);
      const names = Object.fromEntries((rowsA as { id: number; name: string }[]).map((r) => [r.id, r.name]));
      expect([names[1], names[3], names[5], names[7]]).toEqual(['B1', 'A3', 'A5', 'B7']);
      // rows 1 and 3 changed on both sides: each is a conflict, seen from one side or both
      expect(r2.totals.conflicted).toBeGreaterThanOrEqual(2);
      expect(r2.totals.conflicted).toBeLessThanOrEqual(4);

      // no ping-pong: further runs write nothing
      for (let i = 0; i < 2; i++) {
        const r = await o.service.run('contacts');
        expect(r.totals.written, JSON.stringify(r.streams)).toBe(0);
        expect(r.totals.conflicted).toBe(0);
      }
      expect(await dump(b, tb)).toEqual(rowsA);
    } finally {
      await o.close();
    }
  }, 90_000);

  it('target-wins, field-level merge and an expression decide a conflict; an update the target did not touch is no conflict', async () => {
    await a.query(`INSERT INTO "${src}" VALUES (1, 'one', NULL, '2026-01-01'), (2, 'two', NULL, '2026-01-01')`);
    // this one keeps its state in a PostgreSQL store (several workers share one)
    const o = await openSync({ specFile: spec, logLevel: 'error', store: `${A_URL}?schema=${storeSchema}` });
    try {
      expect((await o.service.run('policies')).status).toBe('ok');
      // the target edits row 1 on its own; the source changes rows 1 and 2
      for (const { t } of pols) await b.query(`UPDATE "${t}" SET name = 'local', notes = 'pinned', updated_at = '2026-01-02' WHERE id = 1`);
      await a.query(`UPDATE "${src}" SET name = name || '!', updated_at = '2026-01-03'`);
      const r = await o.service.run('policies');
      expect(r.status).toBe('ok');
      const row = async (p: string, id: number): Promise<unknown> => {
        const t = pols.find((x) => x.p === p)?.t as string;
        const x = (await b.query(`SELECT name, notes FROM "${t}" WHERE id = $1`, [id])).rows[0];
        return x;
      };
      expect(await row('newest', 1)).toEqual({ name: 'one!', notes: null });
      expect(await row('target', 1)).toEqual({ name: 'local', notes: 'pinned' });
      expect(await row('merge', 1)).toEqual({ name: 'one!', notes: 'pinned' });
      expect(await row('expr', 1)).toEqual({ name: 'local', notes: 'pinned' });
      for (const p of ['newest', 'target', 'merge', 'expr']) expect(await row(p, 2)).toEqual({ name: 'two!', notes: null });
      for (const s of r.streams) expect({ stream: s.stream, conflicted: s.conflicted }).toEqual({ stream: s.stream, conflicted: 1 });
    } finally {
      await o.close();
    }
  }, 90_000);
});
