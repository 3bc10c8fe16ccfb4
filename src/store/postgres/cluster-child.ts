/**
 * A worker process for the cluster tests and the `scale` bench: several of these share one
 * store, each in its own process (run with `node --import tsx cluster-child.ts`). The job
 * comes as JSON in the IX_CHILD environment variable; the result is one JSON line on stdout.
 *
 * - `schedule`: runs a once-per-`everyMs` cluster schedule that POSTs each tick to `target`.
 * - `queue`: claims, processes and completes messages until the queue is empty.
 */
import { hostname } from 'node:os';
import { systemClock } from '../../core/clock.js';
import { runClusterSchedule } from '../cluster-schedule.js';
import { SqliteStore } from '../sqlite/sqlite-store.js';
import type { Store } from '../types.js';
import { PostgresStore } from './postgres-store.js';

interface Job {
  readonly mode: 'schedule' | 'queue';
  /** `postgres://…` or a SQLite file path. */
  readonly store: string;
  readonly schema?: string;
  readonly target?: string;
  readonly durationMs?: number;
  readonly everyMs?: number;
  readonly queue?: string;
  readonly batch?: number;
  /** Start working at this time (ms since epoch), so several processes start together. */
  readonly startAt?: number;
}

const job = JSON.parse(process.env['IX_CHILD'] ?? '{}') as Job;
const owner = `${hostname()}:${process.pid}`;

async function open(): Promise<Store> {
  if (job.store.startsWith('postgres')) return PostgresStore.open({ url: job.store, ...(job.schema ? { schema: job.schema } : {}), max: 4 });
  return new SqliteStore(job.store, { synchronous: 'normal' });
}

async function post(body: unknown): Promise<void> {
  const r = await fetch(job.target as string, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  await r.arrayBuffer();
}

async function startTogether(): Promise<void> {
  if (job.startAt) await new Promise((r) => setTimeout(r, Math.max(0, (job.startAt as number) - Date.now())));
}

async function schedule(store: Store): Promise<unknown> {
  // With a start time, the run ends at start + duration whenever this process got going, so
  // the processes together cover one window even when a busy machine starts some late.
  const endAt = (job.startAt ?? Date.now()) + (job.durationMs ?? 10_000);
  await startTogether();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), Math.max(0, endAt - Date.now()));
  let fired = 0;
  await runClusterSchedule(store, {
    name: 'cluster-test',
    owner,
    everyMs: job.everyMs ?? 1000,
    clock: systemClock,
    signal: ac.signal,
    onTick: async (slot) => {
      fired++;
      await post({ owner, slot });
    },
  });
  clearTimeout(timer);
  return { fired };
}

async function queue(store: Store): Promise<unknown> {
  const q = job.queue as string;
  const batch = job.batch ?? 100;
  let done = 0;
  let checksum = 0;
  await startTogether();
  const started = Date.now();
  for (;;) {
    const items = await store.claim(q, owner, { limit: batch, leaseMs: 30_000 });
    if (items.length === 0) break;
    // "Process": parse the payload and fold it into a checksum, as a light step would.
    for (const i of items) checksum = (checksum + Number((i.message.payload as { n: number }).n)) % 1_000_000_007;
    await store.complete(q, owner, items.map((i) => i.message.id));
    done += items.length;
  }
  return { done, checksum, started, ended: Date.now(), rssMB: process.memoryUsage.rss() / 1024 / 1024 };
}

const store = await open();
try {
  const result = job.mode === 'schedule' ? await schedule(store) : await queue(store);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await store.close();
}
