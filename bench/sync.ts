/**
 * `npm run bench -- sync [--quick]`: records/s of a sync stream copying a local paginated REST
 * API (1000 records per page) into PostgreSQL by upsert, next to a hand-written script that
 * fetches the same pages and runs one multi-row upsert per page, in the same run. The sync side
 * includes its checkpoint after every page (SQLite store). 1M records (200k with --quick).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openSync } from '../src/app/sync.js';
import { RecordsApi, type ApiRecord } from '../src/testing/sync-api.js';
import { RssSampler, round, type Bench, type BenchResult } from './harness.js';

const PG_URL = process.env['IX_BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

async function baseline(base: string, pool: pg.Pool, table: string): Promise<number> {
  let cursor: string | null = null;
  let n = 0;
  for (;;) {
    const url: string = `${base}/records?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const body = (await (await fetch(url)).json()) as { data: ApiRecord[]; next: string | null };
    if (body.data.length > 0) {
      const params: unknown[] = [];
      const values = body.data.map((r) => {
        params.push(r.id, r.name, r.updated_at);
        return `($${params.length - 2}, $${params.length - 1}, $${params.length})`;
      });
      await pool.query(`INSERT INTO ${table} (id, name, updated_at) VALUES ${values.join(', ')} ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, updated_at = EXCLUDED.updated_at`, params);
      n += body.data.length;
    }
    if (!body.next) return n;
    cursor = body.next;
  }
}

export const syncBench: Bench = {
  name: 'sync',
  summary: 'sync stream: paginated REST API (1000/page) → PostgreSQL upsert, vs a hand-written fetch + multi-row upsert loop',
  async run({ quick }): Promise<BenchResult> {
    const n = quick ? 200_000 : 1_000_000;
    const api = new RecordsApi();
    api.count = n;
    const base = await api.start();
    const dir = mkdtempSync(join(tmpdir(), 'ix-bench-sync-'));
    const suffix = `${Date.now().toString(36)}_${process.pid}`;
    const ours = `ix_bench_sync_ours_${suffix}`;
    const theirs = `ix_bench_sync_base_${suffix}`;
    const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
    try {
      for (const t of [ours, theirs]) await pool.query(`CREATE TABLE ${t} (id integer PRIMARY KEY, name text, updated_at timestamptz)`);
      const spec = join(dir, 'spec.yaml');
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
  bench:
    target: { postgres: { url: "${PG_URL}", maxConnections: 2 } }
    streams:
      records:
        from: { http: { service: api, endpoint: records, cursorParam: updated_since } }
        table: ${ours}
        key: id
        mode: incremental
        cursor: updated_at
`,
      );
      // baseline first, then ours, then the baseline again: the mean of both baseline runs
      const t0 = performance.now();
      const b1 = await baseline(base, pool, theirs);
      const baseRate1 = b1 / ((performance.now() - t0) / 1000);
      await pool.query(`TRUNCATE ${theirs}`);

      const rss = new RssSampler().start();
      const o = await openSync({ specFile: spec, logLevel: 'error' });
      const t1 = performance.now();
      const record = await o.service.run('bench');
      const oursRate = record.totals.written / ((performance.now() - t1) / 1000);
      await o.close();
      const rssMB = rss.stop();
      if (record.status !== 'ok' || record.totals.written !== n) throw new Error(`sync run ${record.status}: ${JSON.stringify(record.totals)}`);
      const count = Number((await pool.query(`SELECT count(*) AS n FROM ${ours}`)).rows[0].n);
      if (count !== n) throw new Error(`target has ${count} rows, expected ${n}`);

      const t2 = performance.now();
      const b2 = await baseline(base, pool, theirs);
      const baseRate2 = b2 / ((performance.now() - t2) / 1000);
      const baseRate = (baseRate1 + baseRate2) / 2;
      return { bench: 'sync', unit: 'records/s', ours: Math.round(oursRate), baseline: Math.round(baseRate), ratio: round(oursRate / baseRate), rssMB, records: n };
    } finally {
      for (const t of [ours, theirs]) await pool.query(`DROP TABLE IF EXISTS ${t}`).catch(() => undefined);
      await pool.end();
      await api.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
