import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startApp, type App } from '../app/app.js';
import { systemClock } from '../core/clock.js';
import { dropSchemas, TEST_POSTGRES_URL, testSchemaName } from '../store/postgres/test-support.js';
import { serviceAvailable } from '../testing/services.js';
import { uniqueName } from '../testing/sql-suite.js';
import { RecordsApi } from '../testing/sync-api.js';
import { nextTick, type SyncRunRecord } from './service.js';

describe('nextTick', () => {
  it('puts `every` ticks on multiples of the interval since the epoch, the same on every worker', () => {
    const next = nextTick({ every: '500ms' }) as (after: number) => number;
    expect(next(1_000)).toBe(1_500);
    expect(next(1_499)).toBe(1_500);
    expect(next(1_500)).toBe(2_000);
  });

  it('follows a cron expression (UTC), strictly after the time given', () => {
    const next = nextTick({ schedule: '*/10 * * * * *' }) as (after: number) => number;
    const t = Date.UTC(2026, 0, 1, 0, 0, 3);
    expect(next(t)).toBe(Date.UTC(2026, 0, 1, 0, 0, 10));
    expect(next(Date.UTC(2026, 0, 1, 0, 0, 10))).toBe(Date.UTC(2026, 0, 1, 0, 0, 20));
    expect(nextTick({})).toBeUndefined();
  });
});

/** Regression: each worker ran every tick whose run ended before its own timer fired. */
describe.skipIf(!serviceAvailable('postgres'))('a scheduled sync on 3 workers sharing one PostgreSQL store', () => {
  const admin = new pg.Pool({ connectionString: TEST_POSTGRES_URL, max: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'ix-sync-sched-'));
  const api = new RecordsApi();
  const table = uniqueName('ix_sync_sched');
  const schema = testSchemaName('ix_sync_sched');
  const apps: App[] = [];

  afterAll(async () => {
    for (const a of apps) await a.stop();
    await api.stop();
    await admin.query(`DROP TABLE IF EXISTS "${table}"`);
    await admin.end();
    await dropSchemas([schema]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs each tick once across the cluster (short runs, `every: 400ms`)', async () => {
    for (let i = 1; i <= 5; i++) api.put(i);
    const base = await api.start();
    await admin.query(`CREATE TABLE "${table}" (id integer PRIMARY KEY, name text, updated_at timestamptz NOT NULL)`);
    const spec = join(dir, 'spec.yaml');
    writeFileSync(
      spec,
      `version: 1
store: ${TEST_POSTGRES_URL}?schema=${schema}
admin: { enabled: false }
services:
  api:
    type: rest
    baseUrl: ${base}
    endpoints:
      records: { method: GET, path: /records, paginate: { type: cursor, param: cursor, next: "$.next", items: "$.data" } }
syncs:
  ticker:
    every: 400ms
    target: { postgres: { url: "${TEST_POSTGRES_URL}", maxConnections: 1 } }
    streams:
      copy:
        from: { http: { service: api, endpoint: records } }
        table: ${table}
        key: id
        mode: full
`,
    );
    // The third worker's timers fire 150 ms late (its clock lags), after the others' short
    // runs ended and released the lease: only the claimed tick keeps it from running it again.
    const lagging = { now: () => systemClock.now() - 150, sleep: systemClock.sleep };
    for (let w = 0; w < 3; w++) apps.push(await startApp({ specFile: spec, logLevel: 'error', ...(w === 2 ? { clock: lagging } : {}) }));
    const history = async (): Promise<SyncRunRecord[]> => JSON.parse((await apps[0]?.store.getCheckpoint('sync-runs/ticker')) ?? '[]') as SyncRunRecord[];
    const deadline = Date.now() + 60_000;
    while ((await history()).filter((r) => r.trigger === 'every').length < 12 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const runs = await history();
    for (const a of apps.splice(0)) await a.stop();
    const ticks = runs.filter((r) => r.trigger === 'every').map((r) => r.tick as number);
    expect(ticks.length).toBeGreaterThanOrEqual(12);
    // Each tick once: no two workers ran the same tick (before, up to 3 runs per tick).
    expect(new Set(ticks).size).toBe(ticks.length);
    for (const t of ticks) expect(t % 400).toBe(0);
    // No more runs than ticks passed (a tick may be skipped while a run still goes on).
    expect(ticks.length).toBeLessThanOrEqual((Math.max(...ticks) - Math.min(...ticks)) / 400 + 1);
    // The runs at start stand for the period they started in: one per period, not one per worker.
    const starts = runs.filter((r) => r.trigger === 'start').map((r) => r.tick);
    expect(new Set(starts).size).toBe(starts.length);
    expect(runs.every((r) => r.status === 'ok')).toBe(true);
  }, 120_000);
});
