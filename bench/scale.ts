/**
 * `npm run bench -- scale [--quick]`: queue throughput (claim, process, ack) with 1 and with
 * 2 worker processes on one PostgreSQL store, and with 1 on SQLite, in one run. Each worker
 * is its own process (src/store/postgres/cluster-child.ts) claiming batches of 100; the
 * queue is filled first, the workers start together, and the clock stops when the last one
 * finds the queue empty. ratio = 2 workers over 1 on PostgreSQL.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PostgresStore } from '../src/store/postgres/postgres-store.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { Store } from '../src/store/types.js';
import { round, type Bench, type BenchResult } from './harness.js';

const CHILD = join(import.meta.dirname, '../src/store/postgres/cluster-child.ts');
const PG_URL = process.env['IX_BENCH_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const QUEUE = 'inbox:bench';

interface ChildResult {
  done: number;
  checksum: number;
  started: number;
  ended: number;
  rssMB: number;
}

async function fill(store: Store, total: number): Promise<void> {
  for (let i = 0; i < total; i += 5000) {
    const n = Math.min(5000, total - i);
    await store.enqueue(
      QUEUE,
      Array.from({ length: n }, (_, k) => ({
        message: { id: `m${i + k}`, payload: { n: i + k, name: `customer-${i + k}`, note: 'x'.repeat(100) }, headers: {}, meta: {} },
      })),
    );
  }
}

function runWorker(job: object): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, IX_CHILD: JSON.stringify(job) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop() as string) as ChildResult) : reject(new Error(`worker exited ${code}: ${err}`))));
  });
}

interface Measured {
  perSec: number;
  seconds: number;
  perWorker: number[];
  rssMB: number;
}

async function measure(total: number, workers: number, job: Record<string, unknown>): Promise<Measured> {
  // Workers boot (tsx, connect) before the start time, then all start claiming at once.
  const startAt = Date.now() + 3000;
  const results = await Promise.all(Array.from({ length: workers }, () => runWorker({ ...job, mode: 'queue', queue: QUEUE, batch: 100, startAt })));
  const done = results.reduce((n, r) => n + r.done, 0);
  if (done !== total) throw new Error(`workers processed ${done} of ${total} messages`);
  const seconds = (Math.max(...results.map((r) => r.ended)) - startAt) / 1000;
  return { perSec: total / seconds, seconds, perWorker: results.map((r) => r.done), rssMB: Math.max(...results.map((r) => r.rssMB)) };
}

async function onPostgres(total: number, workers: number): Promise<Measured> {
  const schema = `ix_bench_${process.pid}_${workers}_${Date.now() % 100_000}`;
  const store = await PostgresStore.open({ url: PG_URL, schema });
  try {
    await fill(store, total);
    await store.close();
    return await measure(total, workers, { store: PG_URL, schema });
  } finally {
    await store.close();
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
  }
}

async function onSqlite(total: number): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'ix-bench-scale-'));
  try {
    const path = join(dir, 'state.db');
    const store = new SqliteStore(path, { synchronous: 'normal' });
    await fill(store, total);
    await store.close();
    return await measure(total, 1, { store: path });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const scaleBench: Bench = {
  name: 'scale',
  summary: 'queue throughput (claim, process, ack): 1 and 2 worker processes on PostgreSQL, 1 on SQLite',
  async run({ quick }): Promise<BenchResult> {
    const total = quick ? 20_000 : 100_000;
    const pg1 = await onPostgres(total, 1);
    const pg2 = await onPostgres(total, 2);
    const lite = await onSqlite(total);
    const rows = [
      { store: 'postgres', workers: 1, 'msgs/s': round(pg1.perSec, 0), seconds: round(pg1.seconds, 2), perWorker: pg1.perWorker.join('/') },
      { store: 'postgres', workers: 2, 'msgs/s': round(pg2.perSec, 0), seconds: round(pg2.seconds, 2), perWorker: pg2.perWorker.join('/') },
      { store: 'sqlite', workers: 1, 'msgs/s': round(lite.perSec, 0), seconds: round(lite.seconds, 2), perWorker: lite.perWorker.join('/') },
    ];
    for (const r of rows) console.log(JSON.stringify(r));
    return {
      bench: 'scale',
      unit: 'messages/s',
      ours: round(pg2.perSec, 0),
      baseline: round(pg1.perSec, 0),
      ratio: round(pg2.perSec / pg1.perSec, 3),
      rssMB: round(Math.max(pg1.rssMB, pg2.rssMB, lite.rssMB), 1),
      sqlite1: round(lite.perSec, 0),
      messages: total,
      batch: 100,
      note: 'ours = PostgreSQL with 2 worker processes, baseline = PostgreSQL with 1; sqlite1 = SQLite with 1 (one process owns a SQLite file)',
    };
  },
};
