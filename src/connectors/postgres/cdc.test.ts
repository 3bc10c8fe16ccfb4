import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message } from '../../core/message.js';
import { uniqueName } from '../../testing/sql-suite.js';
import { TestSourceContext } from '../../testing/test-source-context.js';
import { testSinkContext } from '../../testing/sink-contract.js';
import { PostgresCdcSource, type ChangeEvent } from './cdc.js';
import { postgresSink } from './sink.js';

/**
 * Change data capture needs a server with wal_level = logical. The shared local server may run
 * with `replica`; point IX_TEST_PG_CDC_URL at one with `logical` (or set it on the local server:
 * ALTER SYSTEM SET wal_level = logical and restart) to run these tests.
 */
const CDC_URL = process.env['IX_TEST_PG_CDC_URL'] ?? process.env['IX_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

async function whyNot(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: CDC_URL, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    const wal = (await c.query<{ wal_level: string }>('SHOW wal_level')).rows[0]?.wal_level;
    if (wal !== 'logical') {
      return `the PostgreSQL server at ${new URL(CDC_URL).host} runs with wal_level = ${wal}; logical replication (pgoutput) needs wal_level = logical: run ALTER SYSTEM SET wal_level = logical and restart it, or point IX_TEST_PG_CDC_URL at a server that has it`;
    }
    return undefined;
  } catch (err) {
    return `no PostgreSQL at ${new URL(CDC_URL).host}: ${(err as Error).message}`;
  } finally {
    await c.end().catch(() => undefined);
  }
}

const skipReason = await whyNot();
if (skipReason) process.stderr.write(`\n*** postgres-cdc tests SKIPPED: ${skipReason}\n\n`);

const ev = (m: Message): ChangeEvent => m.payload as ChangeEvent;

describe.skipIf(skipReason !== undefined)(`postgres-cdc source (logical replication, pgoutput)${skipReason ? ` — skipped: ${skipReason}` : ''}`, () => {
  const admin = new pg.Pool({ connectionString: CDC_URL, max: 2 });
  const table = uniqueName('ix_cdc');
  const slot = uniqueName('ix_slot');
  const publication = uniqueName('ix_pub');
  const config = { url: CDC_URL, slot, publication, tables: [table], linger: 20 };
  const runs: { ctx: TestSourceContext; done: Promise<void> }[] = [];

  const start = (ctx: TestSourceContext): { ctx: TestSourceContext; done: Promise<void> } => {
    const src = new PostgresCdcSource(config);
    const r = { ctx, done: src.run(ctx) };
    runs.push(r);
    return r;
  };
  /** A crash: the process is gone, so is its replication connection; nothing it had not acknowledged is confirmed. */
  const crash = async (r: { ctx: TestSourceContext }): Promise<void> => {
    r.ctx.stop();
    await admin.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [slot]);
  };
  const confirmed = async (): Promise<string> =>
    (await admin.query<{ lsn: string }>('SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]?.lsn ?? '';

  beforeAll(async () => {
    await admin.query(`CREATE TABLE "${table}" (id integer PRIMARY KEY, name text, qty integer)`);
  });
  afterAll(async () => {
    for (const r of runs) r.ctx.stop();
    await new Promise((res) => setTimeout(res, 300));
    await admin.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [slot]).catch(() => undefined);
    await new Promise((res) => setTimeout(res, 300));
    await admin.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
    await admin.query(`DROP PUBLICATION IF EXISTS "${publication}"`);
    await admin.query(`DROP TABLE IF EXISTS "${table}"`);
    await admin.end();
  });

  it('streams inserts, updates and deletes per transaction, with stable ids and keys', async () => {
    const r = start(new TestSourceContext({ batchSize: 100 }));
    // the slot exists once the source is streaming
    await expect.poll(async () => (await confirmed()) !== '', { timeout: 10_000 }).toBe(true);
    await admin.query(`INSERT INTO "${table}" VALUES (1, 'a', 1), (2, 'b', 2)`);
    await admin.query(`UPDATE "${table}" SET qty = 10 WHERE id = 1`);
    await admin.query(`DELETE FROM "${table}" WHERE id = 2`);
    await r.ctx.waitFor(() => r.ctx.delivered.size >= 4, 15_000, 'four changes');
    const got = r.ctx.emitted.map((m) => [ev(m).op, m.key, ev(m).new?.['qty'] ?? null, ev(m).old?.['id'] ?? null]);
    expect(got).toEqual([
      ['insert', '1', 1, null],
      ['insert', '2', 2, null],
      ['update', '1', 10, null],
      ['delete', '2', null, 2],
    ]);
    expect(ev(r.ctx.emitted[0] as Message).table).toBe(table);
    expect(new Set(r.ctx.emitted.map((m) => m.id)).size).toBe(4);
    // acknowledged to the server once settled
    const before = await confirmed();
    await admin.query(`INSERT INTO "${table}" VALUES (3, 'c', 3)`);
    await r.ctx.waitFor(() => r.ctx.delivered.size >= 5, 15_000, 'fifth change');
    await expect.poll(async () => (await confirmed()) !== before, { timeout: 10_000 }).toBe(true);
    r.ctx.stop();
    await r.done;
  });

  it('confirms nothing that did not settle: after a crash the changes come again with the same ids, then never again', async () => {
    const hang = start(new TestSourceContext({ decide: () => 'hang' }));
    await expect.poll(async () => (await admin.query('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]?.active_pid ?? null, { timeout: 10_000 }).not.toBeNull();
    const lsnBefore = await confirmed();
    await admin.query(`INSERT INTO "${table}" VALUES (10, 'x', 1), (11, 'y', 1)`);
    await hang.ctx.waitFor(() => hang.ctx.emitted.length >= 2, 15_000, 'emitted before the crash');
    await new Promise((res) => setTimeout(res, 300));
    expect(await confirmed()).toBe(lsnBefore);
    const ids = hang.ctx.emitted.map((m) => m.id);
    await crash(hang);

    const again = start(new TestSourceContext());
    await again.ctx.waitFor(() => again.ctx.delivered.size >= 2, 20_000, 'redelivery after the crash');
    expect(again.ctx.emitted.slice(0, 2).map((m) => m.id)).toEqual(ids);
    await expect.poll(async () => (await confirmed()) !== lsnBefore, { timeout: 10_000 }).toBe(true);
    again.ctx.stop();
    await again.done;

    const third = start(new TestSourceContext());
    await admin.query(`INSERT INTO "${table}" VALUES (12, 'z', 1)`);
    await third.ctx.waitFor(() => third.ctx.delivered.size >= 1, 15_000, 'the new change');
    expect(third.ctx.emitted.map((m) => m.key)).toEqual(['12']);
    third.ctx.stop();
    await third.done;
  });

  it('reconnects when the replication connection is lost and misses nothing', async () => {
    const r = start(new TestSourceContext({ settleDelayMs: 20 }));
    const active = async (): Promise<number | null> => (await admin.query('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]?.active_pid ?? null;
    await expect.poll(active, { timeout: 10_000 }).not.toBeNull();
    const first = await active();
    for (let i = 0; i < 20; i++) {
      await admin.query(`INSERT INTO "${table}" VALUES (${100 + i}, 'lost', ${i})`);
      if (i === 8) await admin.query('SELECT pg_terminate_backend($1)', [first]);
    }
    await r.ctx.waitFor(() => new Set([...r.ctx.delivered.values()].map((m) => m.key)).size >= 20, 30_000, 'all 20 after the reconnect');
    expect(await active()).not.toBe(first);
    const keys = [...r.ctx.delivered.values()].map((m) => Number(m.key)).sort((a, b) => a - b);
    expect(keys).toEqual(Array.from({ length: 20 }, (_, i) => 100 + i));
    r.ctx.stop();
    await r.done;
  });

  it('a batch that could not settle is streamed again', async () => {
    let rejected = 0;
    const r = start(new TestSourceContext({ decide: (m) => (m.key === '20' && rejected++ === 0 ? 'reject' : 'deliver') }));
    await expect.poll(async () => (await admin.query('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]?.active_pid ?? null, { timeout: 10_000 }).not.toBeNull();
    await admin.query(`INSERT INTO "${table}" VALUES (20, 'r', 1)`);
    await r.ctx.waitFor(() => r.ctx.delivered.size >= 1, 20_000, 'delivered after the reject');
    expect(r.ctx.rejectedBatches).toBe(1);
    expect(r.ctx.emitted.map((m) => m.key)).toEqual(['20', '20']);
    expect(new Set(r.ctx.emitted.map((m) => m.id)).size).toBe(1);
    r.ctx.stop();
    await r.done;
  });
});

describe.skipIf(skipReason !== undefined)('postgres-cdc into the postgres sink', () => {
  it('a replica table follows inserts, updates and deletes (upsert with delete by op)', async () => {
    const admin = new pg.Pool({ connectionString: CDC_URL, max: 2 });
    const source = uniqueName('ix_cdc_src');
    const replica = uniqueName('ix_cdc_dst');
    const slot = uniqueName('ix_slot');
    const publication = uniqueName('ix_pub');
    await admin.query(`CREATE TABLE "${source}" (id integer PRIMARY KEY, name text, qty integer)`);
    await admin.query(`CREATE TABLE "${replica}" (id integer PRIMARY KEY, name text, qty integer)`);
    const sink = await postgresSink.create(
      { url: CDC_URL, table: replica, mode: 'upsert', key: 'id', delete: { when: 'op' }, columns: { id: 'row.id', name: 'row.name', qty: 'row.qty' } },
      testSinkContext(),
    );
    const ctx = new TestSourceContext({ batchSize: 50 });
    const emit = ctx.emit.bind(ctx);
    ctx.emit = async (batch) => {
      const res = await sink.write(batch, testSinkContext());
      if (res && res.failed.size > 0) throw new Error(`sink failed ${res.failed.size}`);
      return emit(batch);
    };
    const src = new PostgresCdcSource({ url: CDC_URL, slot, publication, tables: [source], linger: 20 });
    const done = src.run(ctx);
    try {
      await expect.poll(async () => (await admin.query('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]?.active_pid ?? null, { timeout: 10_000 }).not.toBeNull();
      await admin.query(`INSERT INTO "${source}" SELECT i, 'n' || i, i FROM generate_series(1, 300) i`);
      await admin.query(`UPDATE "${source}" SET qty = qty * 10 WHERE id % 3 = 0`);
      await admin.query(`DELETE FROM "${source}" WHERE id % 7 = 0`);
      await admin.query(`BEGIN; INSERT INTO "${source}" VALUES (1000, 'late', 1); UPDATE "${source}" SET name = 'renamed' WHERE id = 1; DELETE FROM "${source}" WHERE id = 2; COMMIT`);
      const snapshot = async (t: string): Promise<string> => JSON.stringify((await admin.query(`SELECT id, name, qty FROM "${t}" ORDER BY id`)).rows);
      const expected = await snapshot(source);
      await expect.poll(() => snapshot(replica), { timeout: 20_000 }).toBe(expected);
      expect(JSON.parse(expected)).toHaveLength(300 - 42 + 1 - 1);
    } finally {
      ctx.stop();
      await done;
      await sink.close?.();
      await admin.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
      await admin.query(`DROP PUBLICATION IF EXISTS "${publication}"`);
      await admin.query(`DROP TABLE IF EXISTS "${source}", "${replica}"`);
      await admin.end();
    }
  });
});

describe('postgres-cdc source without logical replication', () => {
  it.skipIf(skipReason === undefined)('fails at start with the exact reason', async () => {
    const ctx = new TestSourceContext();
    const src = new PostgresCdcSource({ url: CDC_URL, slot: 'ix_never', publication: 'ix_never', tables: ['x'] });
    await expect(src.run(ctx)).rejects.toThrow(/wal_level = replica; logical replication needs wal_level = logical/);
  });
});
