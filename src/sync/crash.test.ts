import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIx } from '../testing/cli.js';
import { serviceAvailable } from '../testing/services.js';
import { uniqueName } from '../testing/sql-suite.js';
import { RecordsApi } from '../testing/sync-api.js';

const PG_URL = process.env['IX_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const N = 200_000;

/**
 * `ix sync run` is SIGKILLed at random moments and started again: an incremental stream and a
 * full stream (whose vanished rows are deleted at the end) copy 200k records from a paginated
 * API into PostgreSQL. At the end both targets equal the source: nothing lost, nothing doubled,
 * and no row deleted that the source still has.
 */
describe.skipIf(!serviceAvailable('postgres'))('crash: ix sync run SIGKILLed mid-run', () => {
  const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'ix-sync-crash-'));
  const api = new RecordsApi();
  const inc = uniqueName('ix_sc_inc');
  const full = uniqueName('ix_sc_full');
  const spec = join(dir, 'spec.yaml');

  beforeAll(async () => {
    api.count = N;
    const base = await api.start();
    for (const t of [inc, full]) await admin.query(`CREATE TABLE "${t}" (id integer PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL)`);
    // rows the source does not have: the full stream deletes them at the end of its run
    await admin.query(`INSERT INTO "${full}" SELECT i, 'stale', now() FROM generate_series(${N + 1}, ${N + 500}) i`);
    writeFileSync(
      spec,
      `version: 1
store: sqlite:./state.db
services:
  api:
    type: rest
    baseUrl: ${base}
    endpoints:
      records: { method: GET, path: /records, query: { limit: 1000 }, paginate: { type: cursor, param: cursor, next: "$.next", items: "$.data" } }
syncs:
  crash:
    target: { postgres: { url: "${PG_URL}", maxConnections: 2 } }
    streams:
      inc:
        from: { http: { service: api, endpoint: records, cursorParam: updated_since } }
        table: ${inc}
        key: id
        mode: incremental
        cursor: updated_at
      full:
        from: { http: { service: api, endpoint: records } }
        table: ${full}
        key: id
        mode: full
`,
    );
  });
  afterAll(async () => {
    await api.stop();
    for (const t of [inc, full]) await admin.query(`DROP TABLE IF EXISTS "${t}"`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  });

  const count = async (t: string): Promise<number> => Number((await admin.query(`SELECT count(*) AS n FROM "${t}"`)).rows[0].n);
  const run = () => startIx(['sync', 'run', 'crash', '--spec', spec, '--no-progress', '--log-level', 'warn'], { cwd: dir });

  it('targets equal the source after SIGKILLs at random moments', async () => {
    const kills: { inc: number; full: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const before = (await count(inc)) + (await count(full));
      const r = run();
      // once this run is writing, kill it at a random moment
      const deadline = Date.now() + 60_000;
      while ((await count(inc)) + (await count(full)) <= before + 1000 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
      await new Promise((res) => setTimeout(res, Math.floor(Math.random() * 1500)));
      r.child.kill('SIGKILL');
      await r.exited;
      kills.push({ inc: await count(inc), full: await count(full) });
      process.stderr.write(`kill ${i + 1}: ${JSON.stringify(kills[i])}\n`);
    }
    expect(kills.some((k) => k.inc > 0 && k.inc < N), `a kill landed mid-run: ${JSON.stringify(kills)}`).toBe(true);

    const last = run();
    expect(await last.exited, last.stderr()).toBe(0);
    expect(last.stdout()).toMatch(/OK \[cli\]/);

    const base = Date.parse('2026-01-01T00:00:00Z');
    for (const t of [inc, full]) {
      const r = (
        await admin.query(
          `SELECT count(*)::int AS n, count(DISTINCT id)::int AS d, min(id) AS lo, max(id) AS hi,
                  count(*) FILTER (WHERE name <> 'name ' || id OR extract(epoch FROM updated_at) * 1000 <> ${base} + id)::int AS wrong
           FROM "${t}"`,
        )
      ).rows[0];
      expect({ table: t, ...r }).toEqual({ table: t, n: N, d: N, lo: 1, hi: N, wrong: 0 });
    }

    // A second run reads nothing new for the incremental stream; the status shows the runs.
    const again = run();
    expect(await again.exited, again.stderr()).toBe(0);
    expect(again.stdout()).toMatch(/inc\s+ok\s+read 0,/);
    const status = startIx(['sync', 'status', 'crash', '--spec', spec], { cwd: dir });
    expect(await status.exited, status.stderr()).toBe(0);
    expect(status.stdout()).toMatch(/sync crash \(2 streams, unscheduled\): 2 recent runs/);
  }, 240_000);
});
