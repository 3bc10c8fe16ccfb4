/**
 * A worker process for the cluster-schedule failover test: several of these share one store,
 * each in its own process (run with `node --import tsx cluster-child.ts`). The job comes as
 * JSON in the IX_CHILD environment variable: a once-per-`everyMs` cluster schedule
 * (`runClusterSchedule`) that POSTs each tick to `target`; the result is one JSON line on stdout.
 */
import { hostname } from 'node:os';
import { systemClock } from '../../core/clock.js';
import { runClusterSchedule } from '../cluster-schedule.js';
import type { Store } from '../types.js';
import { PostgresStore } from './postgres-store.js';

interface Job {
  readonly mode: 'schedule';
  /** `postgres://…` */
  readonly store: string;
  readonly schema?: string;
  readonly target?: string;
  readonly durationMs?: number;
  readonly everyMs?: number;
  /** Start working at this time (ms since epoch), so several processes start together. */
  readonly startAt?: number;
}

const job = JSON.parse(process.env['IX_CHILD'] ?? '{}') as Job;
const owner = `${hostname()}:${process.pid}`;

function open(): Promise<Store> {
  return PostgresStore.open({ url: job.store, ...(job.schema ? { schema: job.schema } : {}), max: 4 });
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

const store = await open();
try {
  const result = await schedule(store);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await store.close();
}
