import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startApp } from '../app/app.js';
import { createRegistry } from '../app/registry.js';
import { openStore } from '../app/store.js';
import { systemClock } from '../core/clock.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { Engine } from '../engine/engine.js';
import { loadSpecFile } from '../spec/load.js';
import type { Store } from '../store/types.js';
import type { RecordsApi } from '../testing/sync-api.js';
import { contactsFixture } from '../testing/sync-fixture.js';
import { SyncService, type SyncRunRecord } from './service.js';

const TTL = 300;
const LEASE = 'sync:slow';
const OWNER = 'worker-a';
/** 50 records, 5 a page, 100 ms a page: the run at start lasts about 11 pages, several leases. */
const RECORDS = 50;
const PAGES = RECORDS / 5 + 1;

interface Warning {
  readonly obj: Record<string, unknown>;
  readonly msg: string | undefined;
}

interface Fixture {
  readonly api: RecordsApi;
  readonly store: Store;
  readonly service: SyncService;
  readonly warnings: Warning[];
  /** Resolves when the run at start ended (its lease released). */
  readonly ran: Promise<void>;
  runs(): Promise<SyncRunRecord[]>;
  close(): Promise<void>;
}

const dirs: string[] = [];
let open: Fixture | undefined;

afterEach(async () => {
  await open?.close();
  open = undefined;
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The job `slow`: a paginated API (5 records a page) copied into dst.db. */
function slowSpec(base: string): string {
  return `version: 1
store: sqlite:./state.db
services: { api: { type: rest, baseUrl: "${base}", endpoints: { records: { method: GET, path: /records, query: { limit: 5 }, paginate: { type: cursor, param: cursor, next: "$.next", items: "$.data" } } } } }
syncs:
  slow:
    target: { sqlite: { path: dst.db } }
    streams: { contacts: { from: { http: { service: api, endpoint: records } }, table: contacts, key: id, mode: full } }
`;
}

/**
 * A job without a schedule on an embedded SQLite store, started as `ix run` starts it: its
 * run at start takes the lease `sync:slow` (ttl 300 ms) and copies a slow API into SQLite.
 * `wrap` may replace the store's methods before the service starts.
 */
async function slowJob(wrap: (store: Store) => void = () => undefined): Promise<Fixture> {
  const { dir, spec: specFile, api } = await contactsFixture(
    'ix-sync-lease-',
    RECORDS,
    (base) => slowSpec(base),
  );
  dirs.push(dir);
  api.beforeAnswer = () => new Promise((r) => setTimeout(r, 100));
  const registry = createRegistry();
  const loaded = loadSpecFile(specFile, registry);
  const store = await openStore(loaded.spec.store as string, loaded.baseDir);
  const engine = await Engine.build({ loaded: { ...loaded, spec: { ...loaded.spec, flows: [] } }, registry, store, logger: silentLogger });
  const warnings: Warning[] = [];
  const logger: Logger = { ...silentLogger, warn: (obj, msg) => warnings.push({ obj: typeof obj === 'string' ? {} : (obj as Record<string, unknown>), msg: typeof obj === 'string' ? obj : msg }), child: () => logger };
  wrap(store);
  const service = new SyncService({ loaded, registry, store, resources: engine.resources, logger, clock: systemClock, owner: OWNER, syncLeaseMs: TTL });
  await service.start();
  const ran = service.done();
  open = {
    api,
    store,
    service,
    warnings,
    ran,
    runs: async () => JSON.parse((await store.getCheckpoint('sync-runs/slow')) ?? '[]') as SyncRunRecord[],
    async close() {
      await service.stop();
      await engine.stop(0);
      await store.close();
      await api.stop();
    },
  };
  return open;
}

/** The run ended early for the lease: stopped between pages, or its page in flight aborted with the reason. */
function stoppedForTheLease(run: SyncRunRecord | undefined): void {
  expect(run?.status).not.toBe('ok');
  const stream = run?.streams[0];
  if (stream?.status === 'failed') expect(stream.error).toMatch(/no longer holds the lease sync:slow/);
  else expect(stream?.status).toBe('stopped');
}

/** Waits until the run asked for its first page: it holds the lease. */
async function underway(f: Fixture): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (f.api.requests < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  expect(f.api.requests).toBeGreaterThan(0);
}

describe('the lease sync:<job> of a scheduled run', () => {
  /** Regression: the lease was taken for a fixed 10 min and never renewed while the run lasted. */
  it('is renewed while a run lasts several leases, so no other worker takes it, and released after', async () => {
    const f = await slowJob();
    await underway(f);
    let done = false;
    void f.ran.then(() => (done = true));
    const started = Date.now();
    let checks = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, TTL / 2));
      if (done) break;
      // another worker's next tick: it may not take the job while this run goes on
      expect(await f.store.acquireLease(LEASE, 'other-owner', TTL), `${Date.now() - started} ms into the run`).toBe(false);
      checks++;
    }
    expect(Date.now() - started).toBeGreaterThan(3 * TTL);
    expect(checks).toBeGreaterThanOrEqual(5);
    const [run] = await f.runs();
    expect(run?.status).toBe('ok');
    expect(run?.totals.written).toBe(RECORDS);
    expect(f.warnings).toEqual([]);
    // released at the end: the next worker takes it at once, without waiting for it to expire
    expect(await f.store.acquireLease(LEASE, 'other-owner', TTL)).toBe(true);
  });

  it('stops the run and warns when another worker holds the lease mid-run', async () => {
    const f = await slowJob();
    await underway(f);
    // another worker wrote the lease as its own (this one's lapsed while it was suspended)
    await f.store.releaseLease(LEASE, OWNER);
    expect(await f.store.acquireLease(LEASE, 'thief', 60_000)).toBe(true);
    await f.ran;
    expect(f.warnings).toContainEqual({ obj: { sync: 'slow', lease: LEASE }, msg: 'another worker holds the sync lease; the sync run stops taking new work' });
    const [run] = await f.runs();
    stoppedForTheLease(run);
    expect(f.api.requests).toBeLessThan(PAGES);
    expect(run?.totals.written).toBeLessThan(RECORDS);
    // the thief's lease stays: this worker released only its own
    expect(await f.store.acquireLease(LEASE, 'other-owner', TTL)).toBe(false);
  });

  it('stops the run and warns when the lease could not be renewed for two thirds of it', async () => {
    let calls = 0;
    const f = await slowJob((store) => {
      const acquire = store.acquireLease.bind(store);
      store.acquireLease = (...args) => {
        // the first call takes the lease; every renewal finds the store gone, throwing at once
        if (args[0] !== LEASE || calls++ === 0) return acquire(...args);
        throw new TypeError('The database connection is not open');
      };
    });
    await underway(f);
    await f.ran;
    expect(calls).toBeGreaterThan(2);
    expect(f.warnings).toContainEqual({ obj: { sync: 'slow', err: 'The database connection is not open' }, msg: 'sync lease renewal failed' });
    expect(f.warnings).toContainEqual({ obj: { sync: 'slow', lease: LEASE }, msg: 'the sync lease was not renewed for two thirds of it; the sync run stops taking new work' });
    const [run] = await f.runs();
    stoppedForTheLease(run);
    expect(f.api.requests).toBeLessThan(PAGES);
  });
});

describe('ix run --lease', () => {
  it('is the lease a sync run holds (not the 60 s default)', async () => {
    const { dir, spec: specFile, api } = await contactsFixture(
      'ix-sync-run-lease-',
      RECORDS,
      (base) => `${slowSpec(base)}admin: { enabled: false }\n`,
    );
    dirs.push(dir);
    api.beforeAnswer = () => new Promise((r) => setTimeout(r, 100));
    const app = await startApp({ specFile, registry: createRegistry(), logger: silentLogger, leaseMs: 4000 });
    try {
      const deadline = Date.now() + 10_000;
      while (api.requests < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const db = new Database(join(dir, 'state.db'), { readonly: true });
      const row = db.prepare('SELECT expires_at FROM leases WHERE name = ?').get(LEASE) as { expires_at: number } | undefined;
      db.close();
      expect(row).toBeDefined();
      const left = (row as { expires_at: number }).expires_at - Date.now();
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThanOrEqual(4000);
    } finally {
      await app.stop();
      await api.stop();
    }
  });
});

describe('ix sync run (SyncService.runExclusive)', () => {
  it('is refused while another process holds the job lease, and holds it itself while it runs', async () => {
    const f = await slowJob();
    await f.ran; // the run at start ended and released the lease
    const before = f.api.requests;
    expect(await f.store.acquireLease(LEASE, 'ix-run-worker', 60_000)).toBe(true);
    await expect(f.service.runExclusive('slow')).rejects.toMatchObject({ code: 'IX_SYNC_BUSY' });
    expect(f.api.requests).toBe(before);
    await f.store.releaseLease(LEASE, 'ix-run-worker');

    const run = f.service.runExclusive('slow');
    await new Promise((r) => setTimeout(r, 150));
    expect(await f.store.acquireLease(LEASE, 'ix-run-worker', 60_000)).toBe(false);
    const record = await run;
    expect(record.status).toBe('ok');
    expect(record.trigger).toBe('manual');
    expect(await f.store.acquireLease(LEASE, 'ix-run-worker', 60_000)).toBe(true);
  });
});
