/**
 * `npm run bench -- scale [--quick]`: queue throughput through the engine — messages in a
 * flow's durable inbox claimed, run through the flow (a step, a file sink) and acknowledged by
 * `ix run` worker processes: 1 and 2 workers on one PostgreSQL store, 1 on SQLite, in one run.
 * ratio = 2 workers over 1 on PostgreSQL, the median of back-to-back rounds.
 *
 * On PostgreSQL both sets of workers (1 and 2, each on a schema of its own) start first and
 * drain a warm-up batch; then the rounds alternate between the sets. A round commits the whole
 * batch in one transaction (its NOTIFY wakes every worker of the set at once) and the clock
 * runs from that commit until the inbox is empty. A SQLite file belongs to one process, so there the inbox is
 * filled first and the clock runs from the worker's first claim until it is empty.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PostgresStore } from '../src/store/postgres/postgres-store.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { inboxQueue, type Store } from '../src/store/types.js';
import { startIx, type Running } from '../src/testing/cli.js';
import { median, pairedRatio, round, type Bench, type BenchResult } from './harness.js';

const PG_URL = process.env['IX_BENCH_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const FLOW = 'work';
const BATCH = 500;
/** The batch that warms a set of workers before its measured rounds. */
const WARM = 20_000;

interface Measured {
  perSec: number;
  seconds: number;
  rssMB: number;
}

function items(total: number, round = 0): { message: { id: string; payload: unknown; headers: Record<string, string>; meta: Record<string, unknown> } }[] {
  return Array.from({ length: total }, (_, k) => ({ message: { id: `m${round}-${k}`, payload: { n: k, name: `customer-${k}`, note: 'x'.repeat(100) }, headers: {}, meta: {} } }));
}

/** One worker's spec: the inbox of an ingest flow, a light step, a file sink of its own. */
function writeSpecs(dir: string, store: string, workers: number): void {
  for (let w = 0; w < workers; w++) {
    writeFileSync(
      join(dir, `spec-${w}.yaml`),
      [
        'version: 1',
        'name: bench-scale',
        `store: ${store}`,
        'http: { listen: "127.0.0.1:0" }',
        'admin: { enabled: false }',
        'flows:',
        `  ${FLOW}:`,
        `    batchSize: ${BATCH}`,
        '    source: { http-server: { path: /work } }',
        '    steps: [ { filter: "n >= 0" } ]',
        `    sink: { file: { path: out-${w}.jsonl, sync: none } }`,
      ].join('\n'),
    );
  }
}

async function start(dir: string, workers: number): Promise<Running[]> {
  const running = Array.from({ length: workers }, (_, w) => startIx(['run', `spec-${w}.yaml`], { cwd: dir }));
  try {
    await Promise.all(running.map((r) => r.waitFor(/interchange started/, 120_000)));
  } catch (err) {
    await stop(running);
    throw err;
  }
  return running;
}

/** Peak RSS of a worker process, from /proc (Linux); 0 where unavailable. */
function rssOf(r: Running): number {
  try {
    const status = readFileSync(`/proc/${r.child.pid}/status`, 'utf8');
    const kb = /VmHWM:\s+(\d+)/.exec(status)?.[1];
    return kb ? Number(kb) / 1024 : 0;
  } catch {
    return 0;
  }
}

async function stop(running: readonly Running[]): Promise<void> {
  for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
  await Promise.all(running.map((r) => r.exited));
}

/** What is left in the inbox: `ready` (unclaimed) and `left` (any row at all). */
type Probe = () => Promise<{ ready: number; left: number }>;

/** The store's own counts (SQLite: a count over an indexed table of one process). */
function statsProbe(store: Store): Probe {
  return async () => {
    const s = await store.queueStats(inboxQueue(FLOW));
    return { ready: s.ready, left: s.ready + s.leased + s.scheduled };
  };
}

/**
 * Whether any row is left, and nothing more: `queueStats` counts every row of the queue, and
 * on PostgreSQL, every 25 ms, that count took a good part of the two cores the workers and the
 * server are measured on. An `EXISTS` stops at the first row of the queue's index.
 */
async function existsProbe(schema: string): Promise<{ probe: Probe; close: () => Promise<void> }> {
  const c = new pg.Client({ connectionString: PG_URL, options: '-c enable_seqscan=off -c enable_bitmapscan=off' });
  await c.connect();
  const text = `SELECT EXISTS (SELECT 1 FROM ${schema}.queue_items WHERE queue = $1) AS busy`;
  return {
    probe: async () => {
      const r = await c.query<{ busy: boolean }>({ name: 'bench_busy', text, values: [inboxQueue(FLOW)] });
      const left = r.rows[0]?.busy === true ? 1 : 0;
      return { ready: left, left };
    },
    close: () => c.end(),
  };
}

/** Polls the inbox until it is empty; resolves with the time it was first seen empty. */
async function drained(probe: Probe, total: number, deadlineMs: number): Promise<{ first: number | undefined; end: number }> {
  const until = Date.now() + deadlineMs;
  let first: number | undefined;
  for (;;) {
    const s = await probe();
    const now = Date.now();
    if (first === undefined && s.ready < total) first = now;
    if (s.left === 0) return { first, end: now };
    if (now > until) throw new Error(`inbox not drained in ${deadlineMs} ms: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A set of workers on a PostgreSQL schema of its own that stays up for every round: each round
 * commits a batch into the inbox and times its drain. The first batch only warms the workers
 * (JIT, connections, prepared statements), as a long-running worker is warm; the rounds of the
 * two sets alternate, so drift of the machine falls on both.
 */
interface PgCluster {
  round(total: number): Promise<Measured>;
  close(): Promise<void>;
}

async function pgCluster(workers: number): Promise<PgCluster> {
  const schema = `ix_bench_${process.pid}_${workers}_${Date.now() % 100_000}`;
  const dir = mkdtempSync(join(tmpdir(), 'ix-bench-scale-'));
  const store = await PostgresStore.open({ url: PG_URL, schema });
  let running: Running[] = [];
  let watch: { probe: Probe; close: () => Promise<void> } | undefined;
  let sent = 0;
  let n = 0;
  const close = async (): Promise<void> => {
    await stop(running);
    await watch?.close();
    await store.close();
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
    rmSync(dir, { recursive: true, force: true });
  };
  const round = async (total: number): Promise<Measured> => {
    const batch = items(total, n++);
    const probe = (watch as { probe: Probe }).probe;
    await store.enqueue(inboxQueue(FLOW), batch); // one statement, one commit, one NOTIFY
    const t0 = Date.now();
    const { end } = await drained(probe, total, 300_000);
    const seconds = (end - t0) / 1000;
    sent += total;
    // an empty inbox is not the whole story: every message must have reached a sink
    const written = running.reduce((k, _, w) => k + readFileSync(join(dir, `out-${w}.jsonl`), 'utf8').split('\n').filter(Boolean).length, 0);
    if (written < sent) throw new Error(`the inbox is empty but the sinks hold ${written} of ${sent} messages`);
    return { perSec: total / seconds, seconds, rssMB: Math.max(...running.map(rssOf)) };
  };
  try {
    writeSpecs(dir, `${PG_URL}?schema=${schema}`, workers);
    running = await start(dir, workers);
    watch = await existsProbe(schema);
    await round(WARM);
  } catch (err) {
    await close();
    throw err;
  }
  return { round, close };
}

async function onSqlite(total: number): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'ix-bench-scale-'));
  const path = join(dir, 'state.db');
  let running: Running[] = [];
  let watch: SqliteStore | undefined;
  try {
    const seed = new SqliteStore(path, { synchronous: 'normal' });
    const batch = items(total);
    for (let i = 0; i < total; i += 5000) await seed.enqueue(inboxQueue(FLOW), batch.slice(i, i + 5000));
    await seed.close();
    writeSpecs(dir, `sqlite:${path}?sync=normal`, 1);
    running = await start(dir, 1);
    watch = new SqliteStore(path, { synchronous: 'normal' }); // reads only (WAL: beside the worker)
    const { first, end } = await drained(statsProbe(watch), total, 300_000);
    const rssMB = Math.max(...running.map(rssOf));
    const seconds = (end - (first ?? end)) / 1000;
    return { perSec: total / seconds, seconds, rssMB };
  } finally {
    await stop(running);
    await watch?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const scaleBench: Bench = {
  name: 'scale',
  summary: 'queue throughput through `ix run` workers (claim, run the flow, ack): 1 and 2 on PostgreSQL, 1 on SQLite',
  async run({ quick }): Promise<BenchResult> {
    // Rounds long enough that start-up jitter does not decide the ratio: on a fast machine 40k
    // drained in half a second. Quick: 100k (over a second per run); full: 250k.
    const total = quick ? 100_000 : 250_000;
    const rounds = 5;
    const pg1: Measured[] = [];
    const pg2: Measured[] = [];
    const one = await pgCluster(1);
    try {
      const two = await pgCluster(2);
      try {
        for (let r = 0; r < rounds; r++) {
          pg1.push(await one.round(total));
          pg2.push(await two.round(total));
        }
      } finally {
        await two.close();
      }
    } finally {
      await one.close();
    }
    const lite = await onSqlite(total);
    const row = (store: string, workers: number, m: Measured, r?: number) => ({
      store,
      workers,
      round: r ?? '-',
      'msgs/s': round(m.perSec, 0),
      seconds: round(m.seconds, 2),
      rssMB: round(m.rssMB, 1),
    });
    const rows = [...pg1.flatMap((m, r) => [row('postgres', 1, m, r), row('postgres', 2, pg2[r] as Measured, r)]), row('sqlite', 1, lite)];
    for (const r of rows) console.log(JSON.stringify(r));
    const ours = pg2.map((m) => m.perSec);
    const baseline = pg1.map((m) => m.perSec);
    return {
      bench: 'scale',
      unit: 'messages/s',
      ours: round(median(ours), 0),
      baseline: round(median(baseline), 0),
      ratio: round(pairedRatio(ours, baseline), 3),
      rssMB: round(Math.max(...pg1.map((m) => m.rssMB), ...pg2.map((m) => m.rssMB), lite.rssMB), 1),
      sqlite1: round(lite.perSec, 0),
      messages: total,
      rounds,
      batch: BATCH,
      note: 'ix run workers consuming a flow inbox (filter step, file sink); ours = PostgreSQL with 2 workers, baseline = PostgreSQL with 1 (medians of back-to-back rounds; ratio = median of the rounds\' ratios); sqlite1 = SQLite with 1',
    };
  },
};
