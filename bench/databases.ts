/**
 * `npm run bench -- databases [--quick]`: records/s written by the database sinks (upsert,
 * newest-wins, batches of 500, two writes in flight) next to a hand-written loop with the
 * same client doing the same multi-row upsert, in the same run. One JSON line per database.
 */
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { systemClock } from '../src/core/clock.js';
import { silentLogger } from '../src/core/logger.js';
import { createMessage, type Message } from '../src/core/message.js';
import type { ComponentStore, Sink } from '../src/core/component.js';
import { mysqlSink } from '../src/connectors/mysql/sink.js';
import { postgresSink } from '../src/connectors/postgres/sink.js';
import { sqliteSink } from '../src/connectors/sqlite/sink.js';
import { RssSampler, round, type Bench, type BenchResult } from './harness.js';

const PG_URL = process.env['IX_BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const MYSQL_URL = process.env['IX_BENCH_MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/test';
const BATCH = 500;
const IN_FLIGHT = 2;

interface Rec {
  id: number;
  name: string;
  qty: number;
  v: number;
}
const rec = (i: number, v: number): Rec => ({ id: i, name: `item ${i}`, qty: i % 97, v });

const ctx = {
  name: 'bench.sink',
  flow: 'bench',
  logger: silentLogger,
  clock: systemClock,
  baseDir: process.cwd(),
  batchSize: BATCH,
  resources: { get: <T>(): T => undefined as T, has: () => false },
  signal: new AbortController().signal,
  store: new Proxy({} as ComponentStore, { get: (_t, p) => (p === 'then' ? undefined : () => Promise.reject(new Error('no store in the bench'))) }),
  owner: 'bench',
};

/** Runs `write` over `n` records in batches with `IN_FLIGHT` batches at once; returns records/s. */
async function drive(n: number, v: number, write: (batch: Message[]) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (next < n) {
      const from = next;
      next = Math.min(n, next + BATCH);
      // both sides get what a sink gets from the engine: messages
      const batch: Message[] = [];
      for (let i = from; i < next; i++) batch.push(createMessage({ id: `m-${i}-${v}`, payload: rec(i, v) }));
      await write(batch);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  return n / ((performance.now() - t0) / 1000);
}

async function oursWrite(sink: Sink, batch: Message[]): Promise<void> {
  const res = await sink.write(batch, ctx);
  if (res && res.failed.size > 0) throw new Error(`${res.failed.size} rows failed`);
}

interface Target {
  name: string;
  setup(): Promise<void>;
  reset(): Promise<void>;
  count(): Promise<number>;
  ours(): Promise<Sink>;
  baseline(batch: Message[]): Promise<void>;
  teardown(): Promise<void>;
}

function values<T>(batch: Message[], ph: (n: number) => string): { sql: string; params: T[] } {
  const params: unknown[] = [];
  const rows = batch.map((m) => {
    const r = m.payload as Rec;
    const base = params.length;
    params.push(r.id, r.name, r.qty, r.v);
    return `(${ph(base + 1)}, ${ph(base + 2)}, ${ph(base + 3)}, ${ph(base + 4)})`;
  });
  return { sql: rows.join(', '), params: params as T[] };
}

function postgresTarget(table: string): Target {
  const pool = new pg.Pool({ connectionString: PG_URL, max: IN_FLIGHT });
  return {
    name: 'postgres',
    setup: async () => void (await pool.query(`CREATE TABLE ${table} (id integer PRIMARY KEY, name text, qty integer, v integer)`)),
    reset: async () => void (await pool.query(`TRUNCATE ${table}`)),
    count: async () => Number((await pool.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n),
    ours: async () => postgresSink.create({ url: PG_URL, table, mode: 'upsert', key: 'id', onConflict: 'newest-wins', version: 'v', maxConnections: IN_FLIGHT }, ctx),
    baseline: async (batch) => {
      const { sql, params } = values(batch, (n) => `$${n}`);
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        await c.query(
          `INSERT INTO ${table} AS t (id, name, qty, v) VALUES ${sql} ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, qty = EXCLUDED.qty, v = EXCLUDED.v WHERE t.v IS NULL OR t.v < EXCLUDED.v`,
          params,
        );
        await c.query('COMMIT');
      } finally {
        c.release();
      }
    },
    teardown: async () => {
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await pool.end();
    },
  };
}

function mysqlTarget(table: string): Target {
  const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: IN_FLIGHT });
  return {
    name: 'mysql',
    setup: async () => void (await pool.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, name VARCHAR(200), qty INT, v INT) ENGINE=InnoDB`)),
    reset: async () => void (await pool.query(`TRUNCATE ${table}`)),
    count: async () => Number(((await pool.query(`SELECT count(*) AS n FROM ${table}`))[0] as { n: number }[])[0]?.n),
    ours: async () => mysqlSink.create({ url: MYSQL_URL, table, mode: 'upsert', key: 'id', onConflict: 'newest-wins', version: 'v', maxConnections: IN_FLIGHT }, ctx),
    baseline: async (batch) => {
      const { sql, params } = values(batch, () => '?');
      const c = await pool.getConnection();
      try {
        await c.query('START TRANSACTION');
        const newer = '(v IS NULL OR v < VALUES(v))';
        await c.query(
          `INSERT INTO ${table} (id, name, qty, v) VALUES ${sql} ON DUPLICATE KEY UPDATE name = IF(${newer}, VALUES(name), name), qty = IF(${newer}, VALUES(qty), qty), v = IF(${newer}, VALUES(v), v)`,
          params,
        );
        await c.query('COMMIT');
      } finally {
        c.release();
      }
    },
    teardown: async () => {
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await pool.end();
    },
  };
}

function sqliteTarget(table: string): Target {
  const dir = mkdtempSync(join(tmpdir(), 'ix-bench-sqlite-'));
  const path = join(dir, 'bench.db');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  return {
    name: 'sqlite',
    setup: async () => void db.exec(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, v INTEGER)`),
    reset: async () => void db.exec(`DELETE FROM ${table}`),
    count: async () => Number((db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n),
    ours: async () => sqliteSink.create({ path, table, mode: 'upsert', key: 'id', onConflict: 'newest-wins', version: 'v' }, ctx),
    baseline: async (batch) => {
      const { sql, params } = values(batch, () => '?');
      const stmt = db.prepare(
        `INSERT INTO ${table} (id, name, qty, v) VALUES ${sql} ON CONFLICT (id) DO UPDATE SET name = excluded.name, qty = excluded.qty, v = excluded.v WHERE ${table}.v IS NULL OR ${table}.v < excluded.v`,
      );
      db.transaction(() => stmt.run(...params))();
    },
    teardown: async () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function reachable(t: Target): Promise<boolean> {
  try {
    await t.setup();
    return true;
  } catch (err) {
    console.error(`${t.name}: skipped (${(err as Error).message})`);
    return false;
  }
}

export const databasesBench: Bench = {
  name: 'databases',
  summary: 'Database sinks (upsert, newest-wins) vs the raw client doing the same multi-row upsert: records/s per database.',
  async run({ quick }): Promise<BenchResult[]> {
    const n = quick ? 20_000 : 200_000;
    const rounds = quick ? 2 : 4;
    const suffix = `${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
    const results: BenchResult[] = [];
    for (const make of [postgresTarget, mysqlTarget, sqliteTarget]) {
      const t = make(`ix_bench_${suffix}`);
      if (!(await reachable(t))) continue;
      const rss = new RssSampler().start();
      let ours = 0;
      let baseline = 0;
      try {
        const runBaseline = async (): Promise<number> => {
          await t.reset();
          const b = ((await drive(n, 1, (x) => t.baseline(x))) + (await drive(n, 2, (x) => t.baseline(x)))) / 2;
          if ((await t.count()) !== n) throw new Error(`${t.name} baseline wrote ${await t.count()} rows, expected ${n}`);
          return b;
        };
        const runOurs = async (): Promise<number> => {
          await t.reset();
          const sink = await t.ours();
          const o = ((await drive(n, 1, (x) => oursWrite(sink, x))) + (await drive(n, 2, (x) => oursWrite(sink, x)))) / 2;
          await sink.close?.();
          if ((await t.count()) !== n) throw new Error(`${t.name} sink wrote ${await t.count()} rows, expected ${n}`);
          return o;
        };
        // each pass inserts n rows, then updates them with a newer version; the order alternates per round
        for (let r = 0; r < rounds; r++) {
          if (r % 2 === 0) {
            baseline = Math.max(baseline, await runBaseline());
            ours = Math.max(ours, await runOurs());
          } else {
            ours = Math.max(ours, await runOurs());
            baseline = Math.max(baseline, await runBaseline());
          }
        }
      } finally {
        await t.teardown();
      }
      results.push({
        bench: `databases-${t.name}`,
        unit: 'records/s',
        ours: Math.round(ours),
        baseline: Math.round(baseline),
        ratio: round(ours / baseline),
        rssMB: rss.stop(),
        records: n,
        batch: BATCH,
        inFlight: IN_FLIGHT,
        note: 'insert pass then newer-version update pass, averaged; best of rounds, order alternating',
      });
    }
    return results;
  },
};
