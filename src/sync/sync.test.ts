import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSync } from '../app/sync.js';
import { serviceAvailable } from '../testing/services.js';
import { uniqueName } from '../testing/sql-suite.js';
import { RecordsApi } from '../testing/sync-api.js';

const PG_URL = process.env['IX_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

const history3 = (runs: { streams: readonly { stream: string; written: number }[] }[]): number =>
  runs.flatMap((r) => r.streams).filter((s) => s.stream === 'log').reduce((n, s) => n + s.written, 0);

describe.skipIf(!serviceAvailable('postgres'))('sync: REST API → PostgreSQL', () => {
  const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'ix-sync-'));
  const api = new RecordsApi();
  const inc = uniqueName('ix_sync_inc');
  const full = uniqueName('ix_sync_full');
  const marked = uniqueName('ix_sync_mark');
  const narrow = uniqueName('ix_sync_narrow');
  const replay = uniqueName('ix_sync_replay');
  const log = uniqueName('ix_sync_log');
  const spec = join(dir, 'spec.yaml');

  beforeAll(async () => {
    const base = await api.start();
    for (const t of [inc, full, replay]) await admin.query(`CREATE TABLE "${t}" (id integer PRIMARY KEY, name text, updated_at timestamptz NOT NULL)`);
    await admin.query(`CREATE TABLE "${marked}" (id integer PRIMARY KEY, name text, updated_at timestamptz NOT NULL, gone_at timestamptz)`);
    await admin.query(`CREATE TABLE "${narrow}" (id integer PRIMARY KEY, updated_at timestamptz NOT NULL)`);
    await admin.query(`CREATE TABLE "${log}" (id integer NOT NULL, name text, updated_at timestamptz NOT NULL)`);
    writeFileSync(
      spec,
      `version: 1
store: sqlite:./state.db
services:
  crm:
    type: rest
    baseUrl: ${base}
    endpoints:
      records: { method: GET, path: /records, query: { limit: 7 }, paginate: { type: cursor, param: cursor, next: "$.next", items: "$.data" } }
syncs:
  crm:
    target: { postgres: { url: "${PG_URL}", maxConnections: 2 } }
    streams:
      customers:
        from: { http: { service: crm, endpoint: records, cursorParam: updated_since, total: "$.total" } }
        table: ${inc}
        key: id
        mode: incremental
        cursor: updated_at
        deleted: { field: deleted, equals: true }
      log:
        from: { http: { service: crm, endpoint: records } }
        table: ${log}
        key: id
        mode: full
        write: append
        strict: false
      replay:
        from: { http: { service: crm, endpoint: records } }
        table: ${replay}
        key: id
        mode: incremental
        cursor: updated_at
        deleted: { field: deleted, equals: true }
      snapshot:
        from: { http: { service: crm, endpoint: records } }
        table: ${full}
        key: id
        mode: full
        deleted: { field: deleted, equals: true }
      marked:
        from: { http: { service: crm, endpoint: records } }
        table: ${marked}
        key: id
        mode: full
        vanished: { mark: gone_at }
        deleted: { field: deleted, equals: true }
  narrow:
    target: { postgres: { url: "${PG_URL}" } }
    streams:
      narrow:
        from: { http: { service: crm, endpoint: records } }
        table: ${narrow}
        key: id
        mode: full
`,
    );
  });
  afterAll(async () => {
    await api.stop();
    for (const t of [inc, full, marked, narrow, replay, log]) await admin.query(`DROP TABLE IF EXISTS "${t}"`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  });

  const rows = async (t: string, where = 'true'): Promise<{ id: number; name: string; updated_at: string }[]> =>
    (await admin.query(`SELECT id, name, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS updated_at FROM "${t}" WHERE ${where} ORDER BY id`)).rows;
  const live = (): { id: number; name: string; updated_at: string }[] =>
    [...api.records.values()].filter((r) => !r.deleted).sort((a, b) => a.id - b.id).map((r) => ({ id: r.id, name: r.name, updated_at: r.updated_at }));

  it('incremental and full streams: target equals source after each run with inserts, updates and deletes', async () => {
    for (let i = 1; i <= 40; i++) api.put(i);
    const o = await openSync({ specFile: spec, logLevel: 'error' });
    try {
      const r1 = await o.service.run('crm');
      expect(r1.status, JSON.stringify(r1)).toBe('ok');
      expect(await rows(inc)).toEqual(live());
      expect(await rows(full)).toEqual(live());
      expect(r1.streams.find((s) => s.stream === 'customers')?.read).toBe(40);

      // Between runs: inserts, updates, deletes (tombstones), and records that vanished entirely.
      for (let i = 41; i <= 45; i++) api.put(i);
      for (const i of [3, 9, 27]) api.put(i, { name: `renamed ${i}` });
      for (const i of [5, 6, 30]) api.put(i, { deleted: true });
      const r2 = await o.service.run('crm');
      expect(r2.status, JSON.stringify(r2)).toBe('ok');
      const cust = r2.streams.find((s) => s.stream === 'customers');
      expect(cust?.read).toBe(11); // only the changes
      expect(cust?.deleted).toBe(3);
      expect(await rows(inc)).toEqual(live());
      expect(await rows(full)).toEqual(live());

      api.records.delete(12);
      api.records.delete(13);
      api.put(2, { name: 'again' });
      const r3 = await o.service.run('crm');
      expect(r3.status).toBe('ok');
      expect(await rows(full)).toEqual(live());
      expect(r3.streams.find((s) => s.stream === 'snapshot')?.vanished).toBe(2);
      // marked: vanished rows stay, with gone_at set; the others have it cleared
      expect((await rows(marked, 'gone_at IS NULL')).map((r) => r.id)).toEqual(live().map((r) => r.id));
      expect((await rows(marked, 'gone_at IS NOT NULL')).map((r) => r.id)).toEqual([12, 13]);
      // incremental never saw 12 and 13 vanish (no tombstone): they stay, the rest is equal
      expect((await rows(inc)).filter((r) => r.id !== 12 && r.id !== 13)).toEqual(live());

      // append: every run adds every record it read
      const appended = history3(await o.service.history('crm'));
      expect(Number((await admin.query(`SELECT count(*) AS n FROM "${log}"`)).rows[0].n)).toBe(appended);

      const history = await o.service.history('crm');
      expect(history.map((h) => h.status)).toEqual(['ok', 'ok', 'ok']);
      expect(history[2]?.streams.find((s) => s.stream === 'customers')?.checkpoint).toBe(api.records.get(2)?.updated_at);
    } finally {
      await o.close();
    }
  }, 60_000);

  it('a record without its key or with an uncomparable cursor goes to the DLQ; the rest is written', async () => {
    api.records.set(1000, { id: undefined as unknown as number, name: 'no key', updated_at: '2027-01-01T00:00:00.000Z' });
    api.records.set(1001, { id: 1001, name: 'bad cursor', updated_at: '2027-01-01T00:00:01.000Z' });
    api.put(7, { name: 'fine' });
    // a cursor that cannot be compared: the API sorts it last
    (api.records.get(1001) as { updated_at: unknown }).updated_at = 'zzz-not-a-time';
    const o = await openSync({ specFile: spec, logLevel: 'error' });
    try {
      const r = await o.service.run('crm', { streams: ['customers'] });
      const s = r.streams[0];
      expect(s?.failed).toBe(2);
      expect((await rows(inc, 'id = 7'))[0]?.name).toBe('fine');
      const dead = await o.store.listDeadLetters({ flow: 'sync:crm.customers' });
      expect(dead.map((d) => d.reason).sort()).toEqual(['cursor "updated_at" is not comparable: "zzz-not-a-time"', 'record has no key: "id" missing']);
    } finally {
      api.records.delete(1000);
      api.records.delete(1001);
      await o.close();
    }
  }, 60_000);

  it('full refresh, backfill of a cursor range, and a cursor that moves backwards', async () => {
    const o = await openSync({ specFile: spec, logLevel: 'error' });
    try {
      // an API that ignores the cursor: every record of the second run is older than the checkpoint
      const r = await o.service.run('crm', { streams: ['replay'] });
      expect(r.status).toBe('ok');
      const again = await o.service.run('crm', { streams: ['replay'] });
      const s = again.streams[0];
      expect(s?.backwards).toBeGreaterThan(0);
      expect(s?.failed).toBe(0);
      // (12 and 13 vanished without a tombstone in the first test: an incremental stream keeps them)
      expect((await rows(replay)).filter((x) => x.id !== 12 && x.id !== 13)).toEqual(live());

      // a record that vanished without a tombstone: only a full refresh notices
      api.records.delete(14);
      const lastOf = async (): Promise<unknown> =>
        (await o.service.history('crm'))
          .flatMap((h) => h.streams)
          .filter((x) => x.stream === 'customers')
          .at(-1)?.checkpoint;
      const before = await lastOf();
      expect(before).toBeDefined();
      const fr = await o.service.run('crm', { streams: ['customers'], fullRefresh: true });
      expect(fr.streams[0]).toMatchObject({ status: 'ok', vanished: 3 }); // 12, 13 (earlier) and 14
      expect(await rows(inc)).toEqual(live());
      expect(fr.streams[0]?.checkpoint).toBe(before);

      // backfill: repair a range without moving the checkpoint
      await admin.query(`UPDATE "${inc}" SET name = 'corrupted' WHERE id IN (20, 21)`);
      const at20 = api.records.get(20)?.updated_at as string;
      const at21 = api.records.get(21)?.updated_at as string;
      const from = new Date(Date.parse(at20) - 1).toISOString();
      const bf = await o.service.run('crm', { streams: ['customers'], from, to: at21 });
      expect(bf.streams[0]?.status).toBe('ok');
      expect(bf.streams[0]?.written).toBe(2);
      expect(bf.streams[0]?.checkpoint).toBe(before);
      expect(await rows(inc)).toEqual(live());
    } finally {
      await o.close();
    }
  }, 60_000);

  it('a target table that lacks a field stops the stream before anything is written', async () => {
    const o = await openSync({ specFile: spec, logLevel: 'error' });
    try {
      const r = await o.service.run('narrow');
      expect(r.status).toBe('failed');
      expect(r.streams[0]?.error).toMatch(/records have fields the table lacks: "name"/);
      expect((await admin.query(`SELECT count(*)::int AS n FROM "${narrow}"`)).rows[0].n).toBe(0);
    } finally {
      await o.close();
    }
  }, 60_000);
});
