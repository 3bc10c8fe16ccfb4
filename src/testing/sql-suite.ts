import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Sink, SinkWriteResult, Source } from '../core/component.js';
import { IxError } from '../core/errors.js';
import { createMessage, type Message } from '../core/message.js';
import { sinkContract, testSinkContext } from './sink-contract.js';
import { TcpProxy } from './tcp-proxy.js';
import { TestSourceContext } from './test-source-context.js';

/** What the shared SQL suites need from one database. */
export interface SqlKit {
  readonly name: string;
  exec(sql: string): Promise<void>;
  rows(sql: string): Promise<Record<string, unknown>[]>;
  q(ident: string): string;
  /** Column types in this database's DDL. */
  readonly types: { json: string; ts: string; str: string; int: string };
  /** A cursor value in this database's literal form for (seconds, micros). */
  tsLiteral(sec: number, micros: number): string;
  /** The sink's config: `{ url }` or `{ path }`. */
  readonly connection: Record<string, unknown>;
  createSink(config: Record<string, unknown>): Promise<Sink>;
  createSource(config: Record<string, unknown>): Promise<Source>;
  /** The connection config through a TCP proxy on this port (lost-connection tests); none for embedded databases. */
  via?(port: number): Record<string, unknown>;
  /** host and port of the server. */
  readonly address?: { host: string; port: number };
  close(): Promise<void>;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

const parseJson = (v: unknown): unknown => (typeof v === 'string' ? JSON.parse(v) : v);

/** Runs the shared sink contract and the SQL behaviours (policies, dead letters, mapping, polling) against one database. */
export function sqlSuite(makeKit: () => Promise<SqlKit>): void {
  let kit: SqlKit;
  const tables: string[] = [];
  beforeAll(async () => {
    kit = await makeKit();
  });
  afterAll(async () => {
    for (const t of tables) await kit.exec(`DROP TABLE IF EXISTS ${kit.q(t)}`).catch(() => undefined);
    await kit.close();
  });
  const table = async (cols: string): Promise<string> => {
    const t = uniqueName('ix_t');
    tables.push(t);
    await kit.exec(`CREATE TABLE ${kit.q(t)} (${cols})`);
    return t;
  };
  const all = async (t: string, order = 'id'): Promise<Record<string, unknown>[]> => kit.rows(`SELECT * FROM ${kit.q(t)} ORDER BY ${kit.q(order)}`);
  const msg = (id: string, payload: unknown, extra: Partial<Message> = {}): Message => createMessage({ id, payload, ...extra });
  const write = async (sink: Sink, batch: Message[]): Promise<ReadonlyMap<number, unknown>> =>
    ((await sink.write(batch, testSinkContext())) as SinkWriteResult).failed;

  const contractFixture = (mode: 'insert' | 'upsert') => async () => {
    const k = kit ?? (kit = await makeKit());
    const t = uniqueName('ix_c');
    await k.exec(`CREATE TABLE ${k.q(t)} (n ${k.types.int} PRIMARY KEY, name ${k.types.str} NOT NULL, nested ${k.types.json}, message_id ${k.types.str} UNIQUE)`);
    return {
      createSink: () =>
        k.createSink({ table: t, ...(mode === 'insert' ? { idColumn: 'message_id' } : { mode: 'upsert', key: 'n', columns: { n: 'n', name: 'name', nested: 'nested', message_id: '$id' } }) }),
      read: async () =>
        (await k.rows(`SELECT * FROM ${k.q(t)} ORDER BY n`)).map((r) => ({
          id: String(r['message_id']),
          payload: { n: Number(r['n']), name: r['name'], nested: parseJson(r['nested']) },
        })),
      cleanup: () => k.exec(`DROP TABLE IF EXISTS ${k.q(t)}`),
    };
  };
  sinkContract('insert with idColumn', contractFixture('insert'), { keepsIds: true, keepsHeaders: false, dedupes: true });
  sinkContract('upsert by key', contractFixture('upsert'), { keepsIds: true, keepsHeaders: false, dedupes: true });

  describe('upsert conflict policies', () => {
    const cols = (): string => `id ${kit.types.int} PRIMARY KEY, name ${kit.types.str}, v ${kit.types.int}`;
    const seed = async (sink: Sink): Promise<void> => {
      const failed = await write(sink, [msg('a1', { id: 1, name: 'one', v: 5 }), msg('a2', { id: 2, name: 'two', v: 5 })]);
      expect(failed.size).toBe(0);
    };

    it('newest-wins applies a greater version, ignores an older or equal one', async () => {
      const t = await table(cols());
      const sink = await kit.createSink({ table: t, mode: 'upsert', key: 'id', onConflict: 'newest-wins', version: 'v' });
      await seed(sink);
      const failed = await write(sink, [
        msg('b1', { id: 1, name: 'older', v: 4 }),
        msg('b2', { id: 2, name: 'newer', v: 6 }),
        msg('b3', { id: 3, name: 'new row', v: 1 }),
      ]);
      expect(failed.size).toBe(0);
      await write(sink, [msg('b4', { id: 2, name: 'same version', v: 6 })]);
      const rows = await all(t);
      expect(rows.map((r) => [Number(r['id']), r['name'], Number(r['v'])])).toEqual([
        [1, 'one', 5],
        [2, 'newer', 6],
        [3, 'new row', 1],
      ]);
      await sink.close?.();
    });

    it('newest-wins within one batch keeps the greatest version of a key', async () => {
      const t = await table(cols());
      const sink = await kit.createSink({ table: t, mode: 'upsert', key: 'id', onConflict: 'newest-wins', version: 'v' });
      const failed = await write(sink, [msg('c1', { id: 1, name: 'v2', v: 2 }), msg('c2', { id: 1, name: 'v9', v: 9 }), msg('c3', { id: 1, name: 'v3', v: 3 })]);
      expect(failed.size).toBe(0);
      expect((await all(t)).map((r) => r['name'])).toEqual(['v9']);
      await sink.close?.();
    });

    it('source-wins overwrites; target-wins keeps the stored row', async () => {
      const t1 = await table(cols());
      const t2 = await table(cols());
      const src = await kit.createSink({ table: t1, mode: 'upsert', key: 'id', onConflict: 'source-wins' });
      const tgt = await kit.createSink({ table: t2, mode: 'upsert', key: 'id', onConflict: 'target-wins' });
      await seed(src);
      await seed(tgt);
      const batch = [msg('d1', { id: 1, name: 'changed', v: 1 }), msg('d2', { id: 4, name: 'four', v: 1 })];
      expect((await write(src, batch)).size).toBe(0);
      expect((await write(tgt, batch)).size).toBe(0);
      expect((await all(t1)).map((r) => r['name'])).toEqual(['changed', 'two', 'four']);
      expect((await all(t2)).map((r) => r['name'])).toEqual(['one', 'two', 'four']);
      await src.close?.();
      await tgt.close?.();
    });

    it('an expression decides per row with source.* and target.*', async () => {
      const t = await table(cols());
      const sink = await kit.createSink({
        table: t,
        mode: 'upsert',
        key: 'id',
        onConflict: { expression: "target.name = 'one' or source.v > target.v + 10" },
      });
      await seed(sink);
      const failed = await write(sink, [
        msg('e1', { id: 1, name: 'replaced', v: 0 }),
        msg('e2', { id: 2, name: 'not enough', v: 10 }),
        msg('e3', { id: 5, name: 'five', v: 0 }),
      ]);
      expect(failed.size).toBe(0);
      expect((await all(t)).map((r) => r['name'])).toEqual(['replaced', 'two', 'five']);
      await sink.close?.();
    });

    it('deletes by key when the message says so, in batch order, and under newest-wins only an older row', async () => {
      const t = await table(cols());
      const sink = await kit.createSink({ table: t, mode: 'upsert', key: 'id', delete: { when: 'op', equals: ['delete', 'remove'] } });
      await seed(sink);
      const failed = await write(sink, [
        msg('g1', { op: 'delete', id: 1 }),
        msg('g2', { op: 'upsert', id: 3, name: 'three', v: 1 }),
        msg('g3', { op: 'remove', id: 3 }), // written then deleted in one batch: gone
        msg('g4', { op: 'delete', id: 4 }),
        msg('g5', { op: 'upsert', id: 4, name: 'four', v: 1 }), // deleted then written: there
        msg('g6', { op: 'delete', id: 99 }), // nothing to delete: fine
        msg('g7', { op: 'delete' }), // no key: dead-lettered
      ]);
      expect([...failed.keys()]).toEqual([6]);
      expect((await all(t)).map((r) => r['name'])).toEqual(['two', 'four']);
      await sink.close?.();

      const nt = await table(cols());
      const newest = await kit.createSink({ table: nt, mode: 'upsert', key: 'id', onConflict: 'newest-wins', version: 'v', delete: { when: '$meta.op' } });
      await seed(newest);
      const del = (id: string, p: unknown): Message => msg(id, p, { meta: { op: 'delete' } });
      expect((await write(newest, [del('h1', { id: 1, v: 4 }), del('h2', { id: 2, v: 5 })])).size).toBe(0);
      expect((await all(nt)).map((r) => r['name'])).toEqual(['one']); // v 4 < stored 5: kept; v 5 >= 5: deleted
      // a delete without a version removes the row whatever its version, in one batch as in two
      const upsert = (id: string, v: number): Message => msg(id, { id: 7, name: 'seven', v });
      expect((await write(newest, [upsert('i1', 9), del('i2', { id: 7 })])).size).toBe(0);
      const inOne = (await all(nt)).map((r) => r['name']);
      expect((await write(newest, [upsert('j1', 9)])).size).toBe(0);
      expect((await write(newest, [del('j2', { id: 7 })])).size).toBe(0);
      expect(inOne).toEqual(['one']);
      expect((await all(nt)).map((r) => r['name'])).toEqual(['one']);
      await newest.close?.();
      await expect(kit.createSink({ table: nt, delete: { when: 'op' } })).rejects.toThrow(/needs mode upsert/);
    });

    it('rejects a config that cannot work, with a clear error', async () => {
      const t = await table(cols());
      await expect(kit.createSink({ table: t, mode: 'upsert' })).rejects.toThrow(/needs `key`/);
      await expect(kit.createSink({ table: t, mode: 'upsert', key: 'id', onConflict: 'newest-wins' })).rejects.toThrow(/needs `version`/);
      const sink = await kit.createSink({ table: t, mode: 'upsert', key: 'nope' });
      const err = await write(sink, [msg('x', { id: 1 })]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IxError);
      expect((err as IxError).retryable).toBe(false);
      expect(String(err)).toMatch(/no column "nope"/);
      await sink.close?.();
    });
  });

  describe('dead letters and mapping', () => {
    it('a row that violates a constraint fails alone with the database reason; the rest commits', async () => {
      const t = await table(`id ${kit.types.int} PRIMARY KEY, email ${kit.types.str} NOT NULL UNIQUE, qty ${kit.types.int} CHECK (qty >= 0)`);
      const sink = await kit.createSink({ table: t });
      const failed = await write(sink, [
        msg('f1', { id: 1, email: 'a@x', qty: 1 }),
        msg('f2', { id: 2, email: 'a@x', qty: 1 }), // duplicate email
        msg('f3', { id: 3, email: 'c@x', qty: -1 }), // check constraint
        msg('f4', { id: 4, qty: 1 }), // not null
        msg('f5', { id: 5, email: 'e@x', qty: 2 }),
      ]);
      expect([...failed.keys()].sort()).toEqual([1, 2, 3]);
      for (const e of failed.values()) {
        expect(e).toBeInstanceOf(IxError);
        expect((e as IxError).code).toBe('IX_DB_ROW_REJECTED');
        expect((e as IxError).retryable).toBe(false);
      }
      expect(String(failed.get(1))).toMatch(/duplicate|unique/i);
      expect(String(failed.get(2))).toMatch(/check|constraint/i);
      expect(String(failed.get(3))).toMatch(/null|default/i);
      expect((await all(t)).map((r) => Number(r['id']))).toEqual([1, 5]);
      await sink.close?.();
    });

    it('maps columns from payload paths, $id, $key, $payload and headers; a message without a key fails alone', async () => {
      const t = await table(`id ${kit.types.int} PRIMARY KEY, customer ${kit.types.str}, mid ${kit.types.str}, k ${kit.types.str}, body ${kit.types.json}, src ${kit.types.str}`);
      const sink = await kit.createSink({
        table: t,
        mode: 'upsert',
        key: 'id',
        columns: { id: 'order.id', customer: 'order.customer.name', mid: '$id', k: '$key', body: '$payload', src: '$header.x-src' },
      });
      const p = { order: { id: 7, customer: { name: 'Ada' } } };
      const failed = await write(sink, [msg('m1', p, { key: 'K', headers: { 'x-src': 'shop' } }), msg('m2', { order: { customer: { name: 'no id' } } })]);
      expect([...failed.keys()]).toEqual([1]);
      expect(String(failed.get(1))).toMatch(/key column "id" has no value/);
      const rows = await all(t);
      expect(rows).toHaveLength(1);
      expect(rows[0]?.['customer']).toBe('Ada');
      expect(rows[0]?.['mid']).toBe('m1');
      expect(rows[0]?.['k']).toBe('K');
      expect(rows[0]?.['src']).toBe('shop');
      expect(parseJson(rows[0]?.['body'])).toEqual(p);
      await sink.close?.();
    });

    it('without columns writes the payload fields that are columns and ignores the rest; a non-object payload fails alone', async () => {
      const t = await table(`id ${kit.types.int} PRIMARY KEY, name ${kit.types.str}`);
      const sink = await kit.createSink({ table: t });
      const failed = await write(sink, [msg('n1', { id: 1, name: 'a', extra: true }), msg('n2', 'just text'), msg('n3', { id: 2 })]);
      expect([...failed.keys()]).toEqual([1]);
      const rows = await all(t);
      expect(rows.map((r) => [Number(r['id']), r['name']])).toEqual([
        [1, 'a'],
        [2, null],
      ]);
      await sink.close?.();
    });
  });

  describe('lost connection', () => {
    it('a write after the connections were dropped reconnects and commits; an outage shorter than the retries loses nothing', async () => {
      if (!kit.via || !kit.address) {
        expect(kit.name).toBe('sqlite'); // embedded: no connection to lose
        return;
      }
      const proxy = await new TcpProxy(kit.address.host, kit.address.port).start();
      try {
        const t = await table(`id ${kit.types.int} PRIMARY KEY`);
        const sink = await kit.createSink({ table: t, mode: 'upsert', key: 'id', maxConnections: 2, ...kit.via(proxy.port) });
        expect((await write(sink, [msg('l1', { id: 1 })])).size).toBe(0);
        proxy.cut();
        proxy.restore();
        expect((await write(sink, [msg('l2', { id: 2 }), msg('l3', { id: 3 })])).size).toBe(0);
        proxy.cut();
        setTimeout(() => proxy.restore(), 700);
        expect((await write(sink, [msg('l4', { id: 4 })])).size).toBe(0);
        expect((await all(t)).map((r) => Number(r['id']))).toEqual([1, 2, 3, 4]);
        await sink.close?.();
      } finally {
        await proxy.close();
      }
    });
  });

  describe('polling source', () => {
    let running: { ctx: TestSourceContext; done: Promise<void> }[] = [];
    afterEach(async () => {
      for (const r of running) {
        r.ctx.stop();
        await r.done.catch(() => undefined);
      }
      running = [];
    });
    const start = async (config: Record<string, unknown>, ctx: TestSourceContext): Promise<{ ctx: TestSourceContext; done: Promise<void> }> => {
      const src = await kit.createSource(config);
      const r = { ctx, done: src.run(ctx) };
      running.push(r);
      return r;
    };
    const cursorTable = async (): Promise<string> => table(`id ${kit.types.int} PRIMARY KEY, ts ${kit.types.ts} NOT NULL, note ${kit.types.str}`);
    const insertRows = async (t: string, rows: [number, number, number][]): Promise<void> => {
      const values = rows.map(([id, sec, us]) => `(${id}, ${kit.tsLiteral(sec, us)}, 'r${id}')`).join(', ');
      await kit.exec(`INSERT INTO ${kit.q(t)} (id, ts, note) VALUES ${values}`);
    };

    it('reads every row once across batches when many rows share a cursor value (tiebreak by key)', async () => {
      const t = await cursorTable();
      // 7 rows on one timestamp straddle batches of 3; microseconds differ in the last two
      await insertRows(t, [
        [5, 100, 0],
        [1, 100, 0],
        [7, 100, 0],
        [3, 100, 0],
        [2, 100, 0],
        [6, 100, 0],
        [4, 100, 0],
        [9, 100, 1],
        [8, 100, 2],
      ]);
      const ctx = new TestSourceContext({ batchSize: 3 });
      const r = await start({ table: t, cursor: 'ts', key: 'id', stopWhenCaughtUp: true }, ctx);
      await r.done;
      expect(ctx.emitted.map((m) => (m.payload as { id: number }).id).map(Number)).toEqual([1, 2, 3, 4, 5, 6, 7, 9, 8]);
      expect(new Set(ctx.emitted.map((m) => m.id)).size).toBe(9);
      // a new row with the same timestamp but a greater key, and one later: read next time, nothing twice
      await insertRows(t, [
        [10, 100, 2],
        [11, 101, 0],
      ]);
      const ctx2 = new TestSourceContext({ batchSize: 3 });
      await ctx2.checkpoint.set((await ctx.checkpoint.get()) as string);
      await (await start({ table: t, cursor: 'ts', key: 'id', stopWhenCaughtUp: true }, ctx2)).done;
      expect(ctx2.emitted.map((m) => Number((m.payload as { id: number }).id))).toEqual([10, 11]);
    });

    it('commits the checkpoint only after the batch settled: a crash before settling reads it again', async () => {
      const t = await cursorTable();
      await insertRows(t, [
        [1, 10, 0],
        [2, 11, 0],
        [3, 12, 0],
        [4, 13, 0],
      ]);
      // first run: batch 1 settles, batch 2 hangs (crash before the sinks answered)
      let emits = 0;
      const hanging = new TestSourceContext({ batchSize: 2, decide: () => (emits >= 1 ? 'hang' : 'deliver') });
      const origEmit = hanging.emit.bind(hanging);
      hanging.emit = async (batch) => {
        const ack = await origEmit(batch);
        emits++;
        return ack;
      };
      const a = await start({ table: t, cursor: 'ts', key: 'id', maxInFlight: 1 }, hanging);
      await hanging.waitFor(() => hanging.emitted.length >= 4, 10_000, 'two batches');
      await new Promise((res) => setTimeout(res, 200));
      const cp = await hanging.checkpoint.get();
      expect(cp).toBeDefined();
      expect(String(JSON.parse(cp as string).k)).toBe('2');
      running = running.filter((x) => x !== a); // abandoned, like a killed process
      hanging.stop();
      // restart from the committed checkpoint: rows 3 and 4 again, with the same ids
      const ctx = new TestSourceContext({ batchSize: 2 });
      await ctx.checkpoint.set(cp as string);
      await (await start({ table: t, cursor: 'ts', key: 'id', stopWhenCaughtUp: true }, ctx)).done;
      expect(ctx.emitted.map((m) => Number((m.payload as { id: number }).id))).toEqual([3, 4]);
      expect(ctx.emitted.map((m) => m.id)).toEqual(hanging.emitted.slice(2).map((m) => m.id));
    });

    it('a batch that could not settle is read again from the last checkpoint', async () => {
      const t = await cursorTable();
      await insertRows(t, [
        [1, 10, 0],
        [2, 11, 0],
        [3, 12, 0],
      ]);
      let rejected = 0;
      const ctx = new TestSourceContext({ batchSize: 2, decide: (m) => (Number((m.payload as { id: number }).id) === 3 && rejected++ === 0 ? 'reject' : 'deliver') });
      await (await start({ table: t, cursor: 'ts', key: 'id', stopWhenCaughtUp: true }, ctx)).done;
      expect(ctx.rejectedBatches).toBe(1);
      expect(ctx.emitted.map((m) => Number((m.payload as { id: number }).id))).toEqual([1, 2, 3, 3]);
      expect(ctx.delivered.size).toBe(3);
    });

    it('a poll that loses its connection retries and misses nothing', async () => {
      if (!kit.via || !kit.address) {
        expect(kit.name).toBe('sqlite'); // embedded: no connection to lose
        return;
      }
      const proxy = await new TcpProxy(kit.address.host, kit.address.port).start();
      try {
        const t = await cursorTable();
        await insertRows(t, Array.from({ length: 40 }, (_, i): [number, number, number] => [i + 1, 10 + Math.floor(i / 4), 0]));
        let cuts = 0;
        const ctx = new TestSourceContext({
          batchSize: 5,
          decide: (m) => {
            // the connection drops after the second batch, and comes back 300 ms later
            if (Number((m.payload as { id: number }).id) === 10 && cuts++ === 0) {
              proxy.cut();
              setTimeout(() => proxy.restore(), 300);
            }
            return 'deliver';
          },
        });
        await (await start({ table: t, cursor: 'ts', key: 'id', stopWhenCaughtUp: true, ...kit.via(proxy.port) }, ctx)).done;
        expect(cuts).toBe(1);
        expect([...ctx.delivered.values()].map((m) => Number((m.payload as { id: number }).id))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      } finally {
        await proxy.close();
      }
    });

    it('keeps polling on its interval and picks up new rows', async () => {
      const t = await cursorTable();
      await insertRows(t, [[1, 10, 0]]);
      const ctx = new TestSourceContext({ batchSize: 10 });
      await start({ table: t, cursor: 'ts', key: 'id', interval: '100ms', where: "note <> 'skip'" }, ctx);
      await ctx.waitFor(() => ctx.delivered.size === 1, 5000, 'first row');
      await kit.exec(`INSERT INTO ${kit.q(t)} (id, ts, note) VALUES (2, ${kit.tsLiteral(20, 0)}, 'skip'), (3, ${kit.tsLiteral(30, 0)}, 'keep')`);
      await ctx.waitFor(() => ctx.delivered.size === 2, 5000, 'second row');
      expect([...ctx.delivered.values()].map((m) => Number((m.payload as { id: number }).id))).toEqual([1, 3]);
    });
  });
}
