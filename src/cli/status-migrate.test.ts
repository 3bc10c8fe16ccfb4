import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../store/postgres/postgres-store.js';
import { dropSchemas, TEST_POSTGRES_URL, testSchemaName } from '../store/postgres/test-support.js';
import { inboxQueue } from '../store/types.js';
import { startIx, type Running } from '../testing/cli.js';
import { until } from '../testing/poll.js';
import { serviceAvailable } from '../testing/services.js';

async function ix(args: string[], cwd?: string): Promise<{ code: number | string; out: string; err: string }> {
  const r = startIx(args, cwd ? { cwd } : {});
  const code = await r.exited;
  return { code, out: r.stdout(), err: r.stderr() };
}

interface StatusJson {
  store: string;
  queues: { ready: number; scheduled: number; leased: number };
  deadLetters: number;
  workers?: { id: string; pid: number; holds: Record<string, number> }[];
}

const schemas: string[] = [];
const dirs: string[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ix-status-'));
  dirs.push(d);
  return d;
}

afterAll(async () => {
  if (serviceAvailable('postgres')) await dropSchemas(schemas);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

if (!serviceAvailable('postgres')) console.warn('PostgreSQL not reachable at 127.0.0.1:5432: skipping the `ix migrate` / `ix status` PostgreSQL tests');

describe.skipIf(!serviceAvailable('postgres'))('ix migrate and ix status on PostgreSQL', () => {
  it('migrate brings a fresh schema up, and a second run is a no-op', async () => {
    const schema = testSchemaName('ix_cli_migrate');
    schemas.push(schema);
    const store = `${TEST_POSTGRES_URL}?schema=${schema}`;
    const first = await ix(['migrate', '--store', store]);
    expect(first.err).toBe('');
    expect(first.code).toBe(0);
    expect(first.out).toMatch(new RegExp(`^schema ${schema}: version 0 -> \\d+ \\(1 \\S+.*\\)\\n$`));
    const second = await ix(['migrate', '--store', store]);
    expect(second.code).toBe(0);
    const to = /-> (\d+)/.exec(first.out)?.[1];
    expect(second.out).toBe(`schema ${schema} is up to date (version ${to})\n`);
  }, 60_000);

  it('status lists the live worker, what it holds, and the queue depth; --json parses', async () => {
    const schema = testSchemaName('ix_cli_status');
    schemas.push(schema);
    const store = `${TEST_POSTGRES_URL}?schema=${schema}`;
    expect((await ix(['migrate', '--store', store])).code).toBe(0);
    // A receiver that never answers (until the end): the worker's claims stay leased.
    const hanging: ServerResponse[] = [];
    const receiver = createServer((req, res) => {
      req.resume();
      hanging.push(res);
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const port = (receiver.address() as AddressInfo).port;
    const seed = await PostgresStore.open({ url: store });
    let worker: Running | undefined;
    try {
      await seed.enqueue(
        inboxQueue('work'),
        Array.from({ length: 5 }, (_, k) => ({ message: { id: `s${k}`, payload: { k }, headers: {}, meta: {} } })),
      );
      const dir = tempDir();
      writeFileSync(
        join(dir, 'spec.yaml'),
        [
          'version: 1',
          'name: status-test',
          `store: ${store}`,
          'http: { listen: "127.0.0.1:0" }',
          'admin: { enabled: false }',
          'services:',
          '  api:',
          '    type: rest',
          `    baseUrl: "http://127.0.0.1:${port}/"`,
          '    timeout: 5m',
          '    retry: { attempts: 1 }',
          '    endpoints: { hit: { method: POST, path: hit } }',
          'flows:',
          '  work:',
          '    batchSize: 1',
          '    concurrency: 1',
          '    source: { http-server: { path: /work } }',
          '    sink: { http: { service: api, endpoint: hit } }',
        ].join('\n'),
      );
      worker = startIx(['run', 'spec.yaml'], { cwd: dir });
      await worker.waitFor(/interchange started/, 60_000);
      const running = worker;
      const status = await until(
        'the worker listed, holding a claim',
        async () => {
          const r = await ix(['status', '--store', store, '--json']);
          expect(r.code, r.err).toBe(0);
          return JSON.parse(r.out) as StatusJson;
        },
        (s) => s.workers?.length === 1 && (s.workers[0]?.holds[inboxQueue('work')] ?? 0) > 0,
      );
      expect(status.store).toBe('postgres');
      expect(status.deadLetters).toBe(0);
      expect(status.workers?.[0]?.pid).toBe(running.child.pid);
      const q = status.queues;
      expect(q.leased).toBeGreaterThan(0);
      expect(q.ready + q.scheduled + q.leased).toBe(5); // nothing delivered: the receiver never answered
      const text = await ix(['status', '--store', store]);
      expect(text.code).toBe(0);
      expect(text.out).toMatch(/^store: postgres\nqueued: \d+ ready, \d+ scheduled, [1-5] leased\ndead letters: 0\nworkers: 1 live\n/);
      expect(text.out).toMatch(new RegExp(`pid ${running.child.pid} on \\S+, seen \\d+s ago, holds inbox:work=\\d`));
    } finally {
      if (worker && worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
      if (worker) await worker.exited;
      for (const res of hanging) res.destroy();
      receiver.close();
      await seed.close();
    }
  }, 90_000);

  it('status on an unreachable store exits 1 with one line', async () => {
    const r = await ix(['status', '--store', 'postgres://postgres@127.0.0.1:1/test']);
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  }, 60_000);
});

describe('ix migrate and ix status on SQLite', () => {
  it('migrate is a no-op message; status shows the queues and the live worker of a running `ix run`', async () => {
    const dir = tempDir();
    const store = `sqlite:${join(dir, 'state.db')}`;
    const m = await ix(['migrate', '--store', store]);
    expect(m.code).toBe(0);
    expect(m.out).toBe('store is up to date (SQLite migrates when opened)\n');
    const text = await ix(['status', '--store', store]);
    expect(text.code).toBe(0);
    expect(text.out).toBe('store: sqlite\nqueued: 0 ready, 0 scheduled, 0 leased\ndead letters: 0\nworkers: 0 live\n');
    const json = JSON.parse((await ix(['status', '--store', store, '--json'])).out) as StatusJson;
    expect(json).toEqual({ store: 'sqlite', queues: { ready: 0, scheduled: 0, leased: 0 }, deadLetters: 0, workers: [] });

    writeFileSync(
      join(dir, 'spec.yaml'),
      ['version: 1', `store: "${store}"`, 'http: { listen: "127.0.0.1:0" }', 'admin: { enabled: false }', 'flows:', '  work:', '    source: { http-server: { path: /work } }', '    sink: { file: { path: out.jsonl } }'].join('\n'),
    );
    const worker = startIx(['run', 'spec.yaml'], { cwd: dir });
    try {
      await worker.waitFor(/interchange started/, 60_000);
      const live = await until(
        'the worker listed',
        async () => JSON.parse((await ix(['status', '--store', store, '--json'])).out) as StatusJson,
        (s) => s.workers?.length === 1,
      );
      expect(live.workers?.[0]?.pid).toBe(worker.child.pid);
      worker.child.kill('SIGTERM');
      await worker.exited;
      // a clean stop removes the worker
      expect((JSON.parse((await ix(['status', '--store', store, '--json'])).out) as StatusJson).workers).toEqual([]);
    } finally {
      if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
      await worker.exited;
    }
  }, 90_000);
});
