import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { IxError } from '../../core/errors.js';
import { FakeClock } from '../../testing/fake-clock.js';
import { serviceAvailable } from '../../testing/services.js';
import { storeContract } from '../contract.js';
import { migratePostgres } from './migrate.js';
import { postgresMigrations } from './migrations.js';
import { PostgresStore } from './postgres-store.js';
import { dropSchemas, TEST_POSTGRES_URL, testSchemaName } from './test-support.js';

const url = TEST_POSTGRES_URL;
const schemas: string[] = [];
const schema = (): string => {
  const s = testSchemaName();
  schemas.push(s);
  return s;
};
const msg = (id: string) => ({ id, payload: { id }, headers: {}, meta: {} });

const available = serviceAvailable('postgres');

describe.skipIf(!available)('PostgresStore', () => {
  afterAll(async () => {
    await dropSchemas(schemas);
  });

  storeContract('postgres', async (clock) => PostgresStore.open({ url, schema: schema(), clock, max: 4 }));

  const LATEST = Math.max(...postgresMigrations.map((m) => m.version));

describe('migrations', () => {
    it('migrates once, concurrently, and reports what it did', async () => {
      const s = schema();
      const reports = await Promise.all([1, 2, 3].map(() => migratePostgres({ url, schema: s })));
      expect(reports.map((r) => r.applied.length).sort()).toEqual([0, 0, LATEST]);
      const again = await migratePostgres({ url, schema: s });
      expect(again).toEqual({ schema: s, from: LATEST, to: LATEST, applied: [] });
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      const r = await c.query(`SELECT count(*)::int AS n FROM ${s}.ix_migrations`);
      await c.end();
      expect(r.rows[0].n).toBe(LATEST);
    });

    it('refuses a database newer than the code', async () => {
      const s = schema();
      await migratePostgres({ url, schema: s });
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(`INSERT INTO ${s}.ix_migrations (version, name) VALUES (99, 'future')`);
      await c.end();
      await expect(PostgresStore.open({ url, schema: s })).rejects.toThrow(`store schema version 99 is newer than this engine knows (${LATEST})`);
      await expect(migratePostgres({ url, schema: s })).rejects.toMatchObject({ code: 'IX_STORE_TOO_NEW' });
    });

    it('with migrate: false refuses a schema that is behind', async () => {
      const s = schema();
      await expect(PostgresStore.open({ url, schema: s, migrate: false })).rejects.toMatchObject({ code: 'IX_STORE_NOT_MIGRATED' });
      await migratePostgres({ url, schema: s });
      const store = await PostgresStore.open({ url, schema: s, migrate: false });
      await store.close();
    });

    it('rolls a failing migration back whole', async () => {
      const s = schema();
      const broken = [...postgresMigrations, { version: LATEST + 1, name: 'broken', sql: 'CREATE TABLE t2 (a int); SELECT no_such_function();' }];
      await expect(PostgresStore.open({ url, schema: s, migrations: broken })).rejects.toThrow(/no_such_function/);
      const store = await PostgresStore.open({ url, schema: s, migrate: false });
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      const r = await c.query('SELECT to_regclass($1) AS t', [`${s}.t2`]);
      await c.end();
      expect(r.rows[0].t).toBeNull();
      await store.close();
    });
  });

  describe('URLs and errors', () => {
    it('takes schema and pool size from the URL, and never shows the password', async () => {
      const s = schema();
      const store = await PostgresStore.open({ url: `${url}?schema=${s}&pool=2` });
      expect(store.schema).toBe(s);
      await store.close();
      const err = await PostgresStore.open({ url: 'postgres://u:hunter2@127.0.0.1:5432/test?schema=Bad-Name' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IxError);
      expect((err as IxError).code).toBe('IX_STORE_POSTGRES_URL');
      expect(String((err as Error).message)).not.toContain('hunter2');
    });

    it('reports an unreachable database as IX_STORE_UNAVAILABLE (retryable)', async () => {
      const err = await PostgresStore.open({ url: 'postgres://postgres:secret@127.0.0.1:1/test', schema: schema(), connectTimeoutMs: 500 }).catch(
        (e: unknown) => e,
      );
      expect((err as IxError).code).toBe('IX_STORE_UNAVAILABLE');
      expect((err as IxError).retryable).toBe(true);
      expect((err as Error).message).not.toContain('secret');
    });

    it('recovers when its connections are killed', async () => {
      const s = schema();
      const store = await PostgresStore.open({ url, schema: s, applicationName: `ix-kill-${s}` });
      await store.enqueue('q', [{ message: msg('a') }]);
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [`ix-kill-${s}`]);
      await admin.end();
      // The pool notices the broken connection on first use and opens a new one; a query
      // that hit the broken connection fails as retryable.
      let claimed: string[] = [];
      for (let i = 0; i < 5 && claimed.length === 0; i++) {
        try {
          claimed = (await store.claim('q', 'w', { limit: 10, leaseMs: 60_000 })).map((c) => c.message.id);
        } catch (e) {
          expect((e as IxError).code).toBe('IX_STORE_UNAVAILABLE');
        }
      }
      expect(claimed).toEqual(['a']);
      await store.close();
    });
  });

  describe('claims across stores (processes)', () => {
    it('never gives one message to two concurrent claimers', async () => {
      const s = schema();
      const clock = new FakeClock();
      const stores = await Promise.all([0, 1, 2].map(() => PostgresStore.open({ url, schema: s, clock, max: 3 })));
      const ids = Array.from({ length: 600 }, (_, i) => `m${i}`);
      await stores[0]!.enqueue('q', ids.map((id) => ({ message: msg(id) })));
      const got: string[] = [];
      await Promise.all(
        stores.flatMap((st, n) =>
          [0, 1, 2].map(async (k) => {
            for (;;) {
              const batch = await st.claim('q', `w${n}/${k}`, { limit: 7, leaseMs: 60_000 });
              if (batch.length === 0) return;
              got.push(...batch.map((b) => b.message.id));
              await st.complete('q', `w${n}/${k}`, batch.map((b) => b.message.id));
            }
          }),
        ),
      );
      expect(got.length).toBe(600);
      expect(new Set(got).size).toBe(600);
      expect(await stores[1]!.queueStats('q')).toEqual({ ready: 0, scheduled: 0, leased: 0 });
      await Promise.all(stores.map((st) => st.close()));
    });

    it('gives a dead worker’s claims back when the lease passes', async () => {
      const s = schema();
      const clock = new FakeClock();
      const a = await PostgresStore.open({ url, schema: s, clock });
      const b = await PostgresStore.open({ url, schema: s, clock });
      await a.enqueue('q', [{ message: msg('x') }, { message: msg('y') }]);
      expect((await a.claim('q', 'dead', { limit: 10, leaseMs: 30_000 })).length).toBe(2);
      await a.close(); // the worker is gone without completing
      expect(await b.claim('q', 'live', { limit: 10, leaseMs: 30_000 })).toEqual([]);
      clock.set(clock.now() + 30_001);
      expect((await b.claim('q', 'live', { limit: 10, leaseMs: 30_000 })).map((i) => i.message.id)).toEqual(['x', 'y']);
      await b.close();
    });

    it('walks a backlog on from where its last claim stopped, not over every row the workers hold', async () => {
      const s = schema();
      const store = await PostgresStore.open({ url, schema: s, max: 1 });
      await store.enqueue('q', Array.from({ length: 1000 }, (_, k) => ({ message: msg(`m${k}`) })));
      const got: string[] = [];
      for (let k = 0; k < 10; k++) got.push(...(await store.claim('q', 'holder', { limit: 100, leaseMs: 60_000 })).map((i) => i.message.id));
      expect(got).toEqual(Array.from({ length: 1000 }, (_, k) => `m${k}`));
      await store.close();
      // Walking from the start each time reads 100 + 200 + … + 1000 = 5500 index entries.
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        let read = 0;
        for (let i = 0; i < 200; i++) {
          const r = await c.query<{ upd: string; read: string }>(
            `SELECT t.n_tup_upd AS upd, i.idx_tup_read AS read FROM pg_stat_user_tables t
               JOIN pg_stat_user_indexes i ON i.relid = t.relid AND i.indexrelname = 'queue_items_ready'
              WHERE t.schemaname = $1 AND t.relname = 'queue_items'`,
            [s],
          );
          read = Number(r.rows[0]?.read ?? 0);
          if (Number(r.rows[0]?.upd ?? 0) >= 1000) break;
          await new Promise((done) => setTimeout(done, 50));
        }
        expect(read).toBeGreaterThanOrEqual(1000);
        expect(read).toBeLessThan(1500);
      } finally {
        await c.end();
      }
    });

    it('finds rows released behind its walk: another store’s within a second, its own at once', async () => {
      const s = schema();
      const clock = new FakeClock();
      const a = await PostgresStore.open({ url, schema: s, clock });
      const b = await PostgresStore.open({ url, schema: s, clock });
      await a.enqueue('q', Array.from({ length: 10 }, (_, k) => ({ message: msg(`m${k}`) })));
      const ids = async (st: PostgresStore, owner: string): Promise<string[]> => (await st.claim('q', owner, { limit: 2, leaseMs: 60_000 })).map((i) => i.message.id);
      expect(await ids(a, 'a')).toEqual(['m0', 'm1']);
      expect(await ids(b, 'b')).toEqual(['m2', 'm3']);
      expect(await ids(a, 'a')).toEqual(['m4', 'm5']);
      await b.release('q', 'b', ['m2', 'm3']);
      expect(await ids(a, 'a')).toEqual(['m6', 'm7']);
      clock.set(clock.now() + 1000);
      expect(await ids(a, 'a')).toEqual(['m2', 'm3']);
      await a.release('q', 'a', ['m0', 'm1']);
      expect(await ids(a, 'a')).toEqual(['m0', 'm1']);
      // due before every row queued so far: first in the queue's order
      await a.enqueue('q', [{ message: msg('early'), availableAt: clock.now() - 2000 }]);
      expect((await a.claim('q', 'a', { limit: 1, leaseMs: 60_000 })).map((i) => i.message.id)).toEqual(['early']);
      await Promise.all([a.close(), b.close()]);
    });

    it('serves a shared rate limit in order across stores', async () => {
      const s = schema();
      const clock = new FakeClock();
      const stores = await Promise.all([0, 1, 2].map(() => PostgresStore.open({ url, schema: s, clock })));
      const waits = await Promise.all(Array.from({ length: 30 }, (_, i) => stores[i % 3]!.acquireRate('api', { count: 20, perMs: 1000 })));
      // 30 calls at one instant on a 20/s limit: slots every 50 ms, each taken once.
      expect([...waits].sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i * 50));
      await Promise.all(stores.map((st) => st.close()));
    });

    it('elects one leader among concurrent candidates', async () => {
      const s = schema();
      const clock = new FakeClock();
      const stores = await Promise.all([0, 1, 2, 3].map(() => PostgresStore.open({ url, schema: s, clock })));
      const won = await Promise.all(stores.map((st, i) => st.acquireLease('schedule:f', `w${i}`, 2000)));
      expect(won.filter(Boolean).length).toBe(1);
      await Promise.all(stores.map((st) => st.close()));
    });
  });

  describe('queue rows', () => {
    /** The table's update counters, once the store's connections have reported them (at exit). */
    async function updateCounts(s: string, atLeast: number): Promise<{ upd: number; hot: number }> {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        for (let i = 0; ; i++) {
          const r = await c.query<{ upd: string; hot: string }>(
            `SELECT n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'queue_items'`,
            [s],
          );
          const row = { upd: Number(r.rows[0]?.upd ?? 0), hot: Number(r.rows[0]?.hot ?? 0) };
          if (row.upd >= atLeast || i >= 200) return row;
          await new Promise((done) => setTimeout(done, 50));
        }
      } finally {
        await c.end();
      }
    }

    it('claims a batch as heap-only updates (no index entry written for a lease)', async () => {
      const s = schema();
      const store = await PostgresStore.open({ url, schema: s });
      const n = 500;
      await store.enqueue('q', Array.from({ length: n }, (_, k) => ({ message: { ...msg(`m${k}`), payload: { note: 'x'.repeat(100 + (k % 50)) } } })));
      const owner = 'worker-host-1:48213:9f3ab27c'; // as long as an engine's
      expect((await store.claim('q', owner, { limit: n, leaseMs: 30_000 })).length).toBe(n);
      expect(await store.queueStats('q')).toEqual({ ready: 0, scheduled: 0, leased: n });
      await store.close();
      expect(await updateCounts(s, n)).toEqual({ upd: n, hot: n });
    });

    it('completes by the row it claimed: a late completion after the message was claimed again elsewhere, completed and enqueued anew deletes nothing', async () => {
      const s = schema();
      const clock = new FakeClock();
      const a = await PostgresStore.open({ url, schema: s, clock });
      const b = await PostgresStore.open({ url, schema: s, clock });
      await a.enqueue('q', [{ message: msg('x') }]);
      expect((await a.claim('q', 'slow', { limit: 1, leaseMs: 1000 })).length).toBe(1);
      clock.set(clock.now() + 1001);
      expect((await b.claim('q', 'fast', { limit: 1, leaseMs: 1000 })).length).toBe(1);
      await b.complete('q', 'fast', ['x']);
      await b.enqueue('q', [{ message: msg('x') }]);
      expect((await b.claim('q', 'slow', { limit: 1, leaseMs: 1000 })).length).toBe(1); // same owner name, new row
      await a.complete('q', 'slow', ['x']); // a's claim was of the old row
      expect(await b.queueStats('q')).toEqual({ ready: 0, scheduled: 0, leased: 1 });
      await b.complete('q', 'slow', ['x']);
      expect(await b.queueStats('q')).toEqual({ ready: 0, scheduled: 0, leased: 0 });
      await Promise.all([a.close(), b.close()]);
    });

    it('keeps the leases of a schema migrated from version 2: held until they expire, then claimed again', async () => {
      const s = schema();
      const clock = new FakeClock();
      const now = clock.now();
      const old = await PostgresStore.open({ url, schema: s, clock, migrations: postgresMigrations.filter((m) => m.version <= 2) });
      await old.close();
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      // version 2 kept a lease in available_at (its expiry) and lease_owner
      await c.query(
        `INSERT INTO ${s}.queue_items (queue, id, message, available_at, lease_owner, enqueued_at) VALUES
           ('q', 'held', $1, $3, 'gone', $2), ('q', 'free', $4, $2, NULL, $2)`,
        [JSON.stringify(msg('held')), now - 1000, now + 30_000, JSON.stringify(msg('free'))],
      );
      await c.end();
      const store = await PostgresStore.open({ url, schema: s, clock });
      expect(await store.queueStats('q')).toEqual({ ready: 1, scheduled: 0, leased: 1 });
      expect((await store.claim('q', 'w', { limit: 10, leaseMs: 60_000 })).map((i) => i.message.id)).toEqual(['free']);
      clock.set(now + 30_001);
      expect((await store.claim('q', 'w', { limit: 10, leaseMs: 60_000 })).map((i) => i.message.id)).toEqual(['held']);
      await store.close();
    });
  });

  describe('LISTEN/NOTIFY', () => {
    it('wakes a waiting worker when another process enqueues, and times out otherwise', async () => {
      const s = schema();
      const waiter = await PostgresStore.open({ url, schema: s });
      const producer = await PostgresStore.open({ url, schema: s });
      // The first wait opens the LISTEN connection (and wakes when it is up: work may have
      // arrived before anyone listened).
      await waiter.waitForWork('q', 50);
      for (let i = 0; i < 50 && !waiter.listening; i++) await new Promise((r) => setTimeout(r, 20));
      expect(waiter.listening).toBe(true);
      // Nothing enqueued: the wait is a poll and ends at its timeout.
      const t0 = Date.now();
      expect(await waiter.waitForWork('q', 200)).toBe(false);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
      const woke = waiter.waitForWork('q', 10_000);
      const t1 = Date.now();
      await producer.enqueue('other', [{ message: msg('o') }]);
      await producer.enqueue('q', [{ message: msg('a') }]);
      expect(await woke).toBe(true);
      expect(Date.now() - t1).toBeLessThan(2000);
      // Work arriving between a claim and the next wait is not missed.
      await producer.enqueue('q', [{ message: msg('b') }]);
      await new Promise((r) => setTimeout(r, 200));
      expect(await waiter.waitForWork('q', 10_000)).toBe(true);
      // A scheduled (not yet due) enqueue does not wake anyone.
      const quiet = waiter.waitForWork('q', 300);
      await producer.enqueue('q', [{ message: msg('later'), availableAt: Date.now() + 60_000 }]);
      expect(await quiet).toBe(false);
      // Abort ends a wait at once.
      const ac = new AbortController();
      const aborted = waiter.waitForWork('q', 10_000, ac.signal);
      ac.abort();
      expect(await aborted).toBe(false);
      await Promise.all([waiter.close(), producer.close()]);
    });
  });

  describe('workers', () => {
    it('lists live workers with the claims and leases each holds', async () => {
      const s = schema();
      const clock = new FakeClock();
      const store = await PostgresStore.open({ url, schema: s, clock, workerTimeoutMs: 10_000 });
      await store.heartbeat({ id: 'host-a:1', host: 'host-a', pid: 1, info: { flows: ['f'] } });
      await store.heartbeat({ id: 'host-b:2', host: 'host-b', pid: 2 });
      await store.enqueue('inbox:f', ['1', '2', '3'].map((id) => ({ message: msg(id) })));
      await store.claim('inbox:f', 'host-a:1/flow-f', { limit: 2, leaseMs: 30_000 });
      await store.acquireLease('schedule:f', 'host-b:2', 5000);
      const live = await store.listWorkers();
      expect(live.map((w) => [w.id, w.holds, w.leases, w.info])).toEqual([
        ['host-a:1', { 'inbox:f': 2 }, [], { flows: ['f'] }],
        ['host-b:2', {}, ['schedule:f'], {}],
      ]);
      clock.set(clock.now() + 8000);
      await store.heartbeat({ id: 'host-a:1', host: 'host-a', pid: 1 });
      clock.set(clock.now() + 3000);
      expect((await store.listWorkers()).map((w) => w.id)).toEqual(['host-a:1']);
      await store.removeWorker('host-a:1');
      expect(await store.listWorkers()).toEqual([]);
      await store.close();
    });
  });
});
