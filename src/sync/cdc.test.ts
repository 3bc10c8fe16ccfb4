import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type App } from '../app/app.js';
import { uniqueName } from '../testing/sql-suite.js';

const PG_URL = process.env['IX_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const CDC_URL = process.env['IX_TEST_PG_CDC_URL'] ?? PG_URL;

/** Why the test cannot run here (no server with wal_level = logical), or undefined. */
async function whyNot(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: CDC_URL, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    const wal = (await c.query<{ wal_level: string }>('SHOW wal_level')).rows[0]?.wal_level;
    return wal === 'logical' ? undefined : `wal_level is ${wal} at ${new URL(CDC_URL).host}; point IX_TEST_PG_CDC_URL at a server with logical (scripts/pg-logical-scratch.sh)`;
  } catch (err) {
    return `no PostgreSQL at ${new URL(CDC_URL).host}: ${(err as Error).message}`;
  } finally {
    await c.end().catch(() => undefined);
  }
}
const skipReason = await whyNot();
if (skipReason) process.stderr.write(`\n*** sync CDC test SKIPPED: ${skipReason}\n\n`);

/**
 * backfill-realtime from PostgreSQL change data capture: the table is copied while it is being
 * changed (updates, inserts, deletes); the copy and the change stream meet by version, so the
 * target ends equal to the source — nothing missed in between, nothing applied twice.
 */
describe.skipIf(skipReason !== undefined)('sync: backfill then PostgreSQL CDC', () => {
  const src = new pg.Pool({ connectionString: CDC_URL, max: 3 });
  const dst = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'ix-sync-cdc-'));
  const source = uniqueName('ix_scdc_src');
  const target = uniqueName('ix_scdc_dst');
  const slot = uniqueName('ix_scdc_slot').toLowerCase();
  const publication = uniqueName('ix_scdc_pub');
  const spec = join(dir, 'spec.yaml');
  let app: App | undefined;

  beforeAll(async () => {
    await src.query(`CREATE TABLE "${source}" (id integer PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`);
    await src.query(`INSERT INTO "${source}" (id, name) SELECT i, 'name ' || i FROM generate_series(1, 3000) i`);
    await dst.query(`CREATE TABLE "${target}" (id integer PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL)`);
    writeFileSync(
      spec,
      `version: 1
store: sqlite:./state.db
admin: { enabled: false }
syncs:
  cdc:
    target: { postgres: { url: "${PG_URL}" } }
    streams:
      items:
        from: { postgres: { url: "${CDC_URL}", table: ${source} } }
        events: { postgres-cdc: { url: "${CDC_URL}", slot: ${slot}, publication: ${publication}, tables: [${source}] } }
        table: ${target}
        key: id
        mode: backfill-realtime
        version: updated_at
        batchSize: 100
`,
    );
  });
  afterAll(async () => {
    await app?.stop();
    await src.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [slot]).catch(() => undefined);
    await src.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [slot]).catch(() => undefined);
    await src.query(`DROP PUBLICATION IF EXISTS "${publication}"`).catch(() => undefined);
    await src.query(`DROP TABLE IF EXISTS "${source}"`);
    await dst.query(`DROP TABLE IF EXISTS "${target}"`);
    await src.end();
    await dst.end();
    rmSync(dir, { recursive: true, force: true });
  });

  const dump = async (pool: pg.Pool, t: string): Promise<string> =>
    JSON.stringify((await pool.query(`SELECT id, name, updated_at FROM "${t}" ORDER BY id`)).rows.map((r: { id: number; name: string; updated_at: Date }) => [r.id, r.name, r.updated_at.toISOString()]));

  it('copies a table that changes meanwhile and ends equal to it', async () => {
    app = await startApp({ specFile: spec, logLevel: 'error' });
    // changes while the copy runs: updates, inserts, deletes, some of one row several times
    for (let i = 0; i < 300; i++) {
      const id = 1 + Math.floor(Math.random() * 3200);
      const op = i % 3;
      if (op === 0) await src.query(`UPDATE "${source}" SET name = 'changed ' || $2, updated_at = clock_timestamp() WHERE id = $1`, [id, i]);
      else if (op === 1) await src.query(`INSERT INTO "${source}" (id, name) VALUES ($1, 'inserted') ON CONFLICT (id) DO UPDATE SET name = 'upserted', updated_at = clock_timestamp()`, [id]);
      else await src.query(`DELETE FROM "${source}" WHERE id = $1`, [id]);
    }
    const want = await dump(src, source);
    const deadline = Date.now() + 90_000;
    let got = '';
    while (Date.now() < deadline) {
      got = await dump(dst, target);
      if (got === want) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(got.length).toBeGreaterThan(1000);
    if (got !== want) {
      const w = new Map((JSON.parse(want) as [number, string, string][]).map((r) => [r[0], JSON.stringify(r)]));
      const g = new Map((JSON.parse(got) as [number, string, string][]).map((r) => [r[0], JSON.stringify(r)]));
      const diff = [...new Set([...w.keys(), ...g.keys()])].filter((k) => w.get(k) !== g.get(k)).slice(0, 10);
      expect(diff.map((k) => `${k}: source ${w.get(k) ?? 'absent'}, target ${g.get(k) ?? 'absent'}`)).toEqual([]);
    }
  }, 120_000);
});
