import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { serviceAvailable } from '../../testing/services.js';
import { startIx, type Running } from '../../testing/cli.js';
import { TcpProxy } from '../../testing/tcp-proxy.js';
import { inboxQueue } from '../types.js';
import { PostgresStore } from './postgres-store.js';
import { dropSchemas, TEST_POSTGRES_URL, testSchemaName } from './test-support.js';
import { busiest } from '../../testing/poll.js';

const url = TEST_POSTGRES_URL;
const schemas: string[] = [];
const dirs: string[] = [];
const CHILD = join(import.meta.dirname, 'cluster-child.ts');

function newSchema(): string {
  const s = testSchemaName('ix_cluster');
  schemas.push(s);
  return s;
}

/** A local HTTP server that records the JSON bodies POSTed to it, with arrival times. */
async function countingServer(): Promise<{ server: Server; url: string; hits: { at: number; body: Record<string, unknown>; worker?: string }[] }> {
  const hits: { at: number; body: Record<string, unknown>; worker?: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const at = Date.now();
      const worker = req.headers['x-worker'];
      hits.push({ at, body: body ? (JSON.parse(body) as Record<string, unknown>) : {}, ...(typeof worker === 'string' ? { worker } : {}) });
      if (req.method === 'GET') res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
      else res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, hits };
}

describe.skipIf(!serviceAvailable('postgres'))('several workers on one PostgreSQL store', () => {
  afterAll(async () => {
    await dropSchemas(schemas);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('3 `ix run` workers deliver 50k queued messages while one is SIGKILLed: none lost, none doubled into an idempotent sink', async () => {
    const TOTAL = 50_000;
    const schema = newSchema();
    const dir = mkdtempSync(join(tmpdir(), 'ix-cluster-'));
    dirs.push(dir);
    const storeUrl = `${url}?schema=${schema}`;
    const seed = await PostgresStore.open({ url: storeUrl });
    // The idempotent sink: insert by message id, a redelivered message writes nothing.
    const sinkTable = `${schema}.sink`;
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    await db.query(`CREATE TABLE ${sinkTable} (message_id text PRIMARY KEY, item text NOT NULL)`);
    for (let i = 0; i < TOTAL; i += 5000) {
      const items = Array.from({ length: 5000 }, (_, k) => ({ message: { id: `m${i + k}`, payload: { id: `m${i + k}` }, headers: {}, meta: {} } }));
      await seed.enqueue(inboxQueue('work'), items);
    }
    for (let w = 0; w < 3; w++) {
      writeFileSync(
        join(dir, `spec-${w}.yaml`),
        [
          'version: 1',
          'name: cluster',
          `store: ${storeUrl}`,
          'http: { listen: "127.0.0.1:0" }',
          'admin: { enabled: false }',
          'flows:',
          '  work:',
          '    batchSize: 100',
          '    source: { http-server: { path: /work } }',
          '    sinks:',
          `      - { file: { path: out-${w}.jsonl, sync: none } }`,
          `      - { postgres: { url: "${url}", table: ${sinkTable}, idColumn: message_id, columns: { message_id: $id, item: id }, maxConnections: 2 } }`,
        ].join('\n'),
      );
    }
    const lines = (w: number): string[] => {
      const f = join(dir, `out-${w}.jsonl`);
      return existsSync(f) ? readFileSync(f, 'utf8').split('\n') : [];
    };
    const ids = (w: number): string[] =>
      lines(w).flatMap((l) => {
        try {
          return [(JSON.parse(l) as { id: string }).id];
        } catch {
          return []; // an empty or torn last line
        }
      });
    const workers: Running[] = [0, 1, 2].map((w) => startIx(['run', `spec-${w}.yaml`, '--lease', '3s'], { cwd: dir }));
    try {
      await Promise.all(workers.map((r) => r.waitFor(/interchange started/, 120_000)));
      // Let the victim get going, then kill it mid-run, holding claims.
      const victim = workers[0] as Running;
      for (let i = 0; i < 600 && ids(0).length < 3000; i++) await new Promise((r) => setTimeout(r, 50));
      const statsBefore = await seed.queueStats(inboxQueue('work'));
      expect(statsBefore.ready + statsBefore.leased).toBeGreaterThan(0); // still mid-run
      victim.child.kill('SIGKILL');
      expect(await victim.exited).toBe('SIGKILL');
      // The survivors finish the queue, including the victim's claims once its lease passes.
      for (let i = 0; i < 1200; i++) {
        const s = await seed.queueStats(inboxQueue('work'));
        if (s.ready + s.leased + s.scheduled === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await seed.queueStats(inboxQueue('work'))).toEqual({ ready: 0, scheduled: 0, leased: 0 });
      for (const r of workers.slice(1)) r.child.kill('SIGTERM');
      expect(await Promise.all(workers.slice(1).map((r) => r.exited))).toEqual([0, 0]);
    } finally {
      for (const r of workers) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    }
    const per = [0, 1, 2].map(ids);
    const all = per.flat();
    const distinct = new Set(all);
    // Zero lost: every message reached a sink.
    expect(distinct.size).toBe(TOTAL);
    for (let i = 0; i < TOTAL; i++) expect(distinct.has(`m${i}`)).toBe(true);
    // The live workers never shared a message: a second delivery happens only for what the
    // killed worker held (written, not yet acknowledged) when it died.
    const survivors = [...per[1]!, ...per[2]!];
    expect(new Set(survivors).size).toBe(survivors.length);
    expect(new Set(per[0]).size).toBe(per[0]!.length);
    const redelivered = all.length - TOTAL;
    expect(redelivered).toBeLessThanOrEqual(per[0]!.length);
    // Redelivered messages reached the database sink too; it wrote each message exactly once.
    try {
      const rows = (await db.query(`SELECT count(*)::int AS n, count(DISTINCT item)::int AS items FROM ${sinkTable}`)).rows[0] as { n: number; items: number };
      expect(rows).toEqual({ n: TOTAL, items: TOTAL });
      const missing = await db.query(`SELECT count(*)::int AS n FROM generate_series(0, ${TOTAL - 1}) g WHERE NOT EXISTS (SELECT 1 FROM ${sinkTable} WHERE item = 'm' || g)`);
      expect(missing.rows[0].n).toBe(0);
    } finally {
      await db.end();
    }
    expect(await seed.countDeadLetters()).toBe(0);
    console.log(`cluster: ${per.map((p) => p.length).join(' / ')} delivered per worker, ${redelivered} redelivered after the SIGKILL`);
    await seed.close();
  }, 300_000);

  it('runs a checkpointed source on one leader of 3 workers; when the leader is SIGKILLed another resumes from its checkpoint', async () => {
    const TOTAL = 6000;
    const schema = newSchema();
    const dir = mkdtempSync(join(tmpdir(), 'ix-cluster-src-'));
    dirs.push(dir);
    for (let w = 0; w < 3; w++) {
      writeFileSync(
        join(dir, `spec-${w}.yaml`),
        [
          'version: 1',
          'name: cluster-source',
          `store: ${url}?schema=${schema}`,
          'admin: { enabled: false }',
          'flows:',
          '  gen:',
          '    batchSize: 50',
          `    source: { generate: { count: ${TOTAL}, rate: 1000/s } }`,
          `    sink: { file: { path: out-${w}.jsonl, sync: none } }`,
        ].join('\n'),
      );
    }
    const seqs = (w: number): number[] => {
      const f = join(dir, `out-${w}.jsonl`);
      if (!existsSync(f)) return [];
      return readFileSync(f, 'utf8')
        .split('\n')
        .flatMap((l) => {
          try {
            return [(JSON.parse(l) as { seq: number }).seq];
          } catch {
            return [];
          }
        });
    };
    const workers: Running[] = [0, 1, 2].map((w) => startIx(['run', `spec-${w}.yaml`, '--lease', '2s'], { cwd: dir }));
    try {
      await Promise.all(workers.map((r) => r.waitFor(/interchange started/, 120_000)));
      for (let i = 0; i < 1200 && [0, 1, 2].every((w) => seqs(w).length < 1000); i++) await new Promise((r) => setTimeout(r, 50));
      // One leader reads the source; the others stand by.
      const writing = [0, 1, 2].filter((w) => seqs(w).length > 0);
      expect(writing).toHaveLength(1);
      const leader = writing[0] as number;
      expect(workers[leader]?.stderr()).toMatch(/leading this source/);
      expect(seqs(leader).length).toBeLessThan(TOTAL); // still mid-run
      workers[leader]?.child.kill('SIGKILL');
      expect(await workers[leader]?.exited).toBe('SIGKILL');
      // A follower takes the lease once it passes and finishes from the checkpoint; every
      // worker then sees the source done and exits by itself.
      const survivors = [0, 1, 2].filter((w) => w !== leader);
      const codes = await Promise.all(survivors.map((w) => workers[w]?.exited));
      expect(codes).toEqual([0, 0]);
    } finally {
      for (const r of workers) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    }
    const per = [0, 1, 2].map(seqs);
    const all = per.flat();
    expect(new Set(all).size).toBe(TOTAL); // none lost
    // Read twice only what the dead leader had written past its last checkpoint.
    const written = per.map((p) => p.length);
    for (const p of per) expect(new Set(p).size).toBe(p.length);
    console.log(`cluster source: ${written.join(' / ')} written per worker, ${all.length - TOTAL} re-read after the SIGKILL`);
  }, 240_000);

  /** Seeds `total` messages into the inbox of flow `work` and writes one worker spec per entry of `stores`. */
  async function seededCluster(total: number, stores: readonly string[]): Promise<{ dir: string; seed: PostgresStore; ids: (w: number) => string[] }> {
    const dir = mkdtempSync(join(tmpdir(), 'ix-cluster-ops-'));
    dirs.push(dir);
    const seed = await PostgresStore.open({ url: stores[0] as string });
    for (let i = 0; i < total; i += 5000) {
      const n = Math.min(5000, total - i);
      await seed.enqueue(inboxQueue('work'), Array.from({ length: n }, (_, k) => ({ message: { id: `m${i + k}`, payload: { id: `m${i + k}` }, headers: {}, meta: {} } })));
    }
    stores.forEach((store, w) =>
      writeFileSync(
        join(dir, `spec-${w}.yaml`),
        ['version: 1', 'name: cluster', `store: ${store}`, 'http: { listen: "127.0.0.1:0" }', 'admin: { enabled: false }', 'flows:', '  work:', '    batchSize: 50', '    source: { http-server: { path: /work } }', `    sink: { file: { path: out-${w}.jsonl, sync: none } }`].join('\n'),
      ),
    );
    const ids = (w: number): string[] => {
      const f = join(dir, `out-${w}.jsonl`);
      if (!existsSync(f)) return [];
      return readFileSync(f, 'utf8')
        .split('\n')
        .flatMap((l) => {
          try {
            return [(JSON.parse(l) as { id: string }).id];
          } catch {
            return [];
          }
        });
    };
    return { dir, seed, ids };
  }

  async function drained(seed: PostgresStore): Promise<void> {
    for (let i = 0; i < 1200; i++) {
      const s = await seed.queueStats(inboxQueue('work'));
      if (s.ready + s.leased + s.scheduled === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await seed.queueStats(inboxQueue('work'))).toEqual({ ready: 0, scheduled: 0, leased: 0 });
  }

  it('a worker that loses the database stops claiming, stays up, and resumes when it is back', async () => {
    const TOTAL = 20_000;
    const schema = newSchema();
    const proxy = await new TcpProxy('127.0.0.1', Number(new URL(url).port || 5432)).start();
    const viaProxy = new URL(url);
    viaProxy.port = String(proxy.port);
    const { dir, seed, ids } = await seededCluster(TOTAL, [`${viaProxy.toString()}?schema=${schema}`]);
    const worker = startIx(['run', 'spec-0.yaml', '--lease', '3s'], { cwd: dir });
    try {
      await worker.waitFor(/interchange started/, 120_000);
      for (let i = 0; i < 1200 && ids(0).length < 2000; i++) await new Promise((r) => setTimeout(r, 25));
      proxy.cut();
      const atCut = ids(0).length;
      expect(atCut).toBeLessThan(TOTAL); // cut mid-run
      await worker.waitFor(/claim failed|acknowledgement failed|heartbeat/, 60_000);
      await new Promise((r) => setTimeout(r, 3000));
      expect(worker.child.exitCode).toBeNull(); // still running, not crashed
      expect(ids(0).length - atCut).toBeLessThanOrEqual(200); // at most what was in flight
      proxy.restore();
      await drained(seed);
      worker.child.kill('SIGTERM');
      expect(await worker.exited).toBe(0);
    } finally {
      if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
      await proxy.close();
    }
    const all = ids(0);
    expect(new Set(all).size).toBe(TOTAL); // none lost
    console.log(`database outage: ${all.length - TOTAL} redelivered after the connection came back`);
    await seed.close();
  }, 240_000);

  it('a rolling restart (SIGTERM one worker at a time, start it again) under steady load loses and doubles nothing', async () => {
    const schema = newSchema();
    const store = `${url}?schema=${schema}`;
    const { dir, seed, ids } = await seededCluster(2000, [store, store]);
    // Work keeps arriving while the workers restart one after the other.
    let total = 2000;
    let feeding = true;
    const feeder = (async () => {
      while (feeding) {
        const batch = Array.from({ length: 100 }, (_, k) => ({ message: { id: `m${total + k}`, payload: { id: `m${total + k}` }, headers: {}, meta: {} } }));
        await seed.enqueue(inboxQueue('work'), batch);
        total += batch.length;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const start = (w: number): Running => startIx(['run', `spec-${w}.yaml`, '--lease', '3s'], { cwd: dir });
    const running: Running[] = [start(0), start(1)];
    try {
      await Promise.all(running.map((r) => r.waitFor(/interchange started/, 120_000)));
      for (const w of [0, 1, 0]) {
        const written = (): number => ids(0).length + ids(1).length;
        const before = written();
        for (let i = 0; i < 1200 && written() < before + 1000; i++) await new Promise((r) => setTimeout(r, 25));
        running[w]?.child.kill('SIGTERM');
        expect(await running[w]?.exited).toBe(0);
        running[w] = start(w);
        await running[w]?.waitFor(/interchange started/, 120_000);
      }
      feeding = false;
      await feeder;
      await drained(seed);
      for (const r of running) r.child.kill('SIGTERM');
      expect(await Promise.all(running.map((r) => r.exited))).toEqual([0, 0]);
    } finally {
      feeding = false;
      for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    }
    const all = [...ids(0), ...ids(1)];
    expect(new Set(all).size).toBe(total); // none lost
    expect(all.length).toBe(total); // none doubled: a drained worker acknowledged all it wrote
    expect(await seed.countDeadLetters()).toBe(0);
    console.log(`rolling restart: ${total} messages fed during 3 restarts, ${ids(0).length} / ${ids(1).length} per worker`);
    await seed.close();
  }, 240_000);

  /** Starts 3 `ix run` workers, one spec each (`spec(w)`), and waits until all are up. */
  async function threeWorkers(spec: (w: number) => string[], args: string[] = []): Promise<{ dir: string; workers: Running[] }> {
    const dir = mkdtempSync(join(tmpdir(), 'ix-cluster-run-'));
    dirs.push(dir);
    for (let w = 0; w < 3; w++) writeFileSync(join(dir, `spec-${w}.yaml`), spec(w).join('\n'));
    const workers = [0, 1, 2].map((w) => startIx(['run', `spec-${w}.yaml`, ...args], { cwd: dir }));
    await Promise.all(workers.map((r) => r.waitFor(/interchange started/, 120_000)));
    return { dir, workers };
  }

  async function stopAll(workers: readonly Running[]): Promise<void> {
    for (const r of workers) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
    await Promise.race([Promise.all(workers.map((r) => r.exited)), new Promise((r) => setTimeout(r, 30_000))]);
    for (const r of workers) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  }

  it('3 `ix run` workers fire a once-per-second scheduled flow 10 ± 1 times in 10 s (not 30), counted by the polled server', async () => {
    const schema = newSchema();
    const polled = await countingServer();
    let workers: Running[] = [];
    try {
      ({ workers } = await threeWorkers((w) => [
        'version: 1',
        `name: cluster-schedule-${w}`,
        `store: ${url}?schema=${schema}`,
        'admin: { enabled: false }',
        'services:',
        `  clock: { type: rest, baseUrl: "${polled.url}", endpoints: { tick: { method: GET, path: tick } } }`,
        'flows:',
        '  tick:',
        '    source: { http: { service: clock, endpoint: tick, schedule: "* * * * * *" } }',
        `    sink: { file: { path: out-${w}.jsonl, sync: none } }`,
      ]));
      // All three are up: count the polls in the 10 s from the middle of the next second.
      const from = Math.ceil(Date.now() / 1000) * 1000 + 500;
      const to = from + 10_000;
      while (Date.now() < to + 300) await new Promise((r) => setTimeout(r, 100));
      const polls = polled.hits.filter((h) => h.at >= from && h.at < to).length;
      // One leader polls; the two others stand by (3 workers each polling would make 30).
      expect(workers.filter((r) => /leading this source/.test(r.stderr()))).toHaveLength(1);
      expect(workers.filter((r) => /another worker leads this source/.test(r.stderr()))).toHaveLength(2);
      expect(polls).toBeGreaterThanOrEqual(9);
      expect(polls).toBeLessThanOrEqual(11);
      console.log(`schedule under ix run: ${polls} polls in 10 s from 3 workers`);
    } finally {
      await stopAll(workers);
      polled.server.close();
    }
  }, 180_000);

  it('hands the schedule to a follower when the leader is SIGKILLed: no tick doubled, none missed but the one it died in', async () => {
    const schema = newSchema();
    await (await PostgresStore.open({ url, schema })).close();
    const sink = await countingServer();
    try {
      const job = { mode: 'schedule', store: url, schema, target: sink.url, durationMs: 60_000, everyMs: 500 };
      const children = [0, 1, 2].map(() =>
        spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, IX_CHILD: JSON.stringify(job) }, stdio: 'ignore' }),
      );
      try {
        for (let i = 0; i < 200 && sink.hits.length < 4; i++) await new Promise((r) => setTimeout(r, 50));
        const leaderPid = Number(String(sink.hits.at(-1)?.body['owner']).split(':')[1]);
        const leader = children.find((c) => c.pid === leaderPid);
        expect(leader).toBeDefined();
        leader?.kill('SIGKILL');
        const killedAt = Date.now();
        for (let i = 0; i < 200 && sink.hits.filter((h) => h.at > killedAt).length < 6; i++) await new Promise((r) => setTimeout(r, 50));
        const slots = sink.hits.map((h) => h.body['slot'] as number);
        expect(new Set(slots).size).toBe(slots.length);
        // Consecutive slots across the failover. At most one may be missing: the tick the
        // leader had claimed (recorded as fired) when it was killed, before it could run it.
        const sorted = [...slots].sort((a, b) => a - b);
        expect(sorted.at(-1)! - sorted[0]! + 1 - sorted.length).toBeLessThanOrEqual(1);
        // The dead leader fired nothing after its death; the others took over.
        const after = sink.hits.filter((h) => h.at > killedAt + 100);
        expect(after.length).toBeGreaterThanOrEqual(5);
        expect(after.every((h) => !String(h.body['owner']).endsWith(`:${leaderPid}`))).toBe(true);
      } finally {
        for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      }
    } finally {
      sink.server.close();
    }
  }, 60_000);

  it('3 `ix run` workers calling a service with `rateLimit: 20/sec` stay at 20 calls per second at the receiving server', async () => {
    const TOTAL = 240; // 12 s at 20/s
    const schema = newSchema();
    const store = `${url}?schema=${schema}`;
    const receiver = await countingServer();
    let workers: Running[] = [];
    try {
      ({ workers } = await threeWorkers((w) => [
        'version: 1',
        'name: cluster-rate',
        `store: ${store}`,
        'http: { listen: "127.0.0.1:0" }',
        'admin: { enabled: false }',
        'services:',
        '  api:',
        '    type: rest',
        `    baseUrl: "${receiver.url}"`,
        '    rateLimit: 20/sec',
        `    headers: { x-worker: "${w}" }`,
        '    endpoints: { hit: { method: POST, path: hit } }',
        'flows:',
        '  work:',
        '    batchSize: 10',
        '    source: { http-server: { path: /work } }',
        '    sink: { http: { service: api, endpoint: hit } }',
      ]));
      // The work arrives once all three are up, so all three share it.
      const seed = await PostgresStore.open({ url: store });
      try {
        await seed.enqueue(inboxQueue('work'), Array.from({ length: TOTAL }, (_, k) => ({ message: { id: `r${k}`, payload: { id: `r${k}` }, headers: {}, meta: {} } })));
        for (let i = 0; i < 1200 && receiver.hits.length < TOTAL; i++) await new Promise((r) => setTimeout(r, 100));
      } finally {
        await seed.close();
      }
    } finally {
      await stopAll(workers);
      receiver.server.close();
    }
    const hits = receiver.hits;
    expect(new Set(hits.map((h) => h.body['id'])).size).toBe(TOTAL);
    const byWorker = [0, 1, 2].map((w) => hits.filter((h) => h.worker === String(w)).length);
    expect(byWorker.every((n) => n > 0)).toBe(true); // all three called
    const arrivals = hits.map((h) => h.at).sort((a, b) => a - b);
    const windows = perSecond(arrivals);
    const span = ((arrivals.at(-1) as number) - (arrivals[0] as number)) / 1000;
    console.log(`rate limit under ix run: ${TOTAL} calls (${byWorker.join(' / ')} per worker) in ${span} s; per second ${JSON.stringify(windows)}; busiest sliding second ${busiest(arrivals)}`);
    // Without a shared limit, 3 workers make 60/s. Tolerance: +5 per one-second window at the
    // server for calls that a busy machine sends late (a worker's event loop stalled past its
    // slot), bunching with the punctual ones of the others; idle, the windows hold 20 or 21.
    expect(Math.max(...windows.map((n) => n ?? 0))).toBeLessThanOrEqual(25);
    // And over the whole run, 20/s (the first call is free).
    expect(TOTAL - 1).toBeLessThanOrEqual(Math.ceil(20 * span) + 2);
  }, 180_000);

  it('runs a sync job without a schedule once at start across 3 `ix run` workers and a 4th joining; again after the only worker is SIGKILLed', async () => {
    const schema = newSchema();
    const store = `${url}?schema=${schema}`;
    const api = await countingServer();
    const dir = mkdtempSync(join(tmpdir(), 'ix-cluster-sync-'));
    dirs.push(dir);
    // The API answers [] to every GET: a run is one request, so the server counts the runs.
    // The flow keeps each `ix run` up after its run at start (alone, the job would end it).
    writeFileSync(
      join(dir, 'spec.yaml'),
      [
        'version: 1',
        'name: cluster-sync-once',
        `store: ${store}`,
        'http: { listen: "127.0.0.1:0" }',
        'admin: { enabled: false }',
        'flows:',
        '  idle: { source: { http-server: { path: /idle } }, sink: { file: { path: out.jsonl } } }',
        `services: { api: { type: rest, baseUrl: "${api.url}", endpoints: { records: { method: GET, path: records } } } }`,
        'syncs:',
        '  once:',
        '    target: { sqlite: { path: dst.db } }',
        '    streams:',
        '      contacts: { from: { http: { service: api, endpoint: records } }, table: contacts, key: id, mode: full }',
      ].join('\n'),
    );
    const dst = new Database(join(dir, 'dst.db'));
    dst.exec('CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT)');
    dst.close();
    const db = new pg.Client({ connectionString: url });
    /** Each worker says whether it ran the job at start or left it to another one. */
    const decided = /"msg":"(sync run finished|sync job is running on another worker|sync job already ran at start)/;
    const running: Running[] = [];
    const start = async (): Promise<Running> => {
      const r = startIx(['run', 'spec.yaml'], { cwd: dir });
      running.push(r);
      await r.waitFor(decided, 120_000);
      return r;
    };
    const startRuns = async (): Promise<number> => {
      const r = await db.query(`SELECT value FROM ${schema}.checkpoints WHERE key = 'sync-runs/once'`);
      const runs = r.rows[0] ? (JSON.parse(r.rows[0].value as string) as { trigger: string }[]) : [];
      return runs.filter((x) => x.trigger === 'start').length;
    };
    await db.connect();
    try {
      await Promise.all([start(), start(), start()]);
      expect(api.hits.length).toBe(1);
      expect(await startRuns()).toBe(1);
      expect(running.filter((r) => /sync run finished/.test(r.stderr()))).toHaveLength(1);
      // Before: a worker starting after the run ended ran the job again.
      const late = await start();
      expect(late.stderr()).toMatch(/already ran at start on a live worker/);
      expect(api.hits.length).toBe(1);
      await stopAll(running.splice(0));
      // The cluster was down: the next worker runs it, as one process does. SIGKILLed, its row
      // in the workers table stays fresh for a while, but its process is gone: the next one
      // runs the job again too.
      const alone = await start();
      expect(alone.stderr()).toMatch(/sync run finished/);
      // "finished" is logged before the job's lease is released: killed in between, the lease
      // would stand for its ttl and the next worker would rightly leave the job to its holder
      for (let i = 0; i < 200; i++) {
        const held = await db.query(`SELECT 1 FROM ${schema}.leases WHERE name = 'sync:once'`);
        if (held.rowCount === 0) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      alone.child.kill('SIGKILL');
      await alone.exited;
      const next = await start();
      expect(next.stderr()).toMatch(/sync run finished/);
      expect(api.hits.length).toBe(3);
      expect(await startRuns()).toBe(3);
    } finally {
      await stopAll(running);
      await db.end();
      api.server.close();
    }
  }, 240_000);
});

function perSecond(times: readonly number[]): number[] {
  const t0 = times[0] ?? 0;
  const out: number[] = [];
  for (const t of times) {
    const k = Math.floor((t - t0) / 1000);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
