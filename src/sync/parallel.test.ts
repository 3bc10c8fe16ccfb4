import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openSync } from '../app/sync.js';
import { serviceAvailable } from '../testing/services.js';
import { uniqueName } from '../testing/sql-suite.js';
import { busiest } from '../testing/poll.js';

const PG_URL = process.env['IX_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const STREAMS = ['a', 'b', 'c'] as const;
const PAGES = 6;
const PER_PAGE = 5;

/** GET /s/NAME?cursor=N: page N of stream NAME; records each call's arrival. */
async function pagedApi(): Promise<{ server: Server; url: string; calls: { stream: string; at: number }[] }> {
  const calls: { stream: string; at: number }[] = [];
  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const stream = u.pathname.split('/')[2] ?? '';
    const page = Number(u.searchParams.get('cursor') ?? 0);
    calls.push({ stream, at: Date.now() });
    const data = Array.from({ length: PER_PAGE }, (_, k) => {
      const id = page * PER_PAGE + k + 1;
      return { id, name: `${stream}-${id}`, updated_at: new Date(Date.UTC(2026, 0, 1, 0, 0, id)).toISOString() };
    });
    const body = JSON.stringify({ data, next: page + 1 < PAGES ? String(page + 1) : null });
    // A little latency, as a real API has: calls of different streams overlap in time.
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(body), 20);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

describe.skipIf(!serviceAvailable('postgres'))('sync: the streams of one job run concurrently, within the service rate limit', () => {
  const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'ix-sync-par-'));
  const tables = Object.fromEntries(STREAMS.map((s) => [s, uniqueName(`ix_sync_par_${s}`)])) as Record<(typeof STREAMS)[number], string>;
  let api: Awaited<ReturnType<typeof pagedApi>> | undefined;

  afterAll(async () => {
    api?.server.close();
    for (const t of Object.values(tables)) await admin.query(`DROP TABLE IF EXISTS "${t}"`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  });

  it('3 streams of one service share its `rateLimit: 10/sec` and overlap in time', async () => {
    api = await pagedApi();
    for (const t of Object.values(tables)) await admin.query(`CREATE TABLE "${t}" (id integer PRIMARY KEY, name text, updated_at timestamptz NOT NULL)`);
    const spec = join(dir, 'spec.yaml');
    writeFileSync(
      spec,
      `version: 1
store: sqlite:./state.db
services:
  api:
    type: rest
    baseUrl: ${api.url}
    rateLimit: 10/sec
    endpoints:
${STREAMS.map((s) => `      ${s}: { method: GET, path: /s/${s}, paginate: { type: cursor, param: cursor, next: "$.next", items: "$.data" } }`).join('\n')}
syncs:
  all:
    concurrency: 3
    target: { postgres: { url: "${PG_URL}", maxConnections: 3 } }
    streams:
${STREAMS.map((s) => `      ${s}:\n        from: { http: { service: api, endpoint: ${s} } }\n        table: ${tables[s]}\n        key: id\n        mode: full`).join('\n')}
`,
    );
    const o = await openSync({ specFile: spec, logLevel: 'error' });
    try {
      const run = await o.service.run('all');
      expect(run.status, JSON.stringify(run)).toBe('ok');
    } finally {
      await o.close();
    }
    for (const s of STREAMS) expect(Number((await admin.query(`SELECT count(*) AS n FROM "${tables[s]}"`)).rows[0].n)).toBe(PAGES * PER_PAGE);
    const calls = api.calls;
    expect(calls).toHaveLength(STREAMS.length * PAGES);
    // Concurrent: each stream's calls span a time that overlaps every other stream's (one
    // stream after the other, they would not overlap).
    const span = (s: string): [number, number] => {
      const at = calls.filter((c) => c.stream === s).map((c) => c.at);
      return [Math.min(...at), Math.max(...at)];
    };
    for (const x of STREAMS) {
      for (const y of STREAMS) {
        if (x === y) continue;
        const [a0, a1] = span(x);
        const [b0, b1] = span(y);
        expect(a0 < b1 && b0 < a1, `streams ${x} and ${y} overlap`).toBe(true);
      }
    }
    // Within the service's limit, shared by the streams (per stream it would be 30/s): at most
    // 10 calls in any second at the server, +1 for a call sent a little late.
    const arrivals = calls.map((c) => c.at).sort((a, b) => a - b);
    expect(busiest(arrivals)).toBeLessThanOrEqual(11);
    const seconds = ((arrivals.at(-1) as number) - (arrivals[0] as number)) / 1000;
    expect(arrivals.length - 1).toBeLessThanOrEqual(Math.ceil(10 * seconds) + 1);
  }, 120_000);
});
