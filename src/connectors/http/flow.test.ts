import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../../app/registry.js';
import { engineFromYaml, type TestEngine } from '../../testing/harness.js';
import { feed, receivedBy, registerMemory, resetMemory } from '../../testing/memory.js';
import { json, TestServer, tokenBucketExcess } from './test-server.js';

const registry = registerMemory(createRegistry());

let server: TestServer;
let t: TestEngine | undefined;
beforeEach(async () => {
  resetMemory();
  server = await new TestServer((_r, res) => json(res, 200, {})).start();
});
afterEach(async () => {
  await t?.close();
  t = undefined;
  await server.stop();
});

const services = (url: string, extra = ''): string => `version: 1
services:
  api:
    type: rest
    baseUrl: ${url}
    timeout: 2s
    rateLimit: 40/s
    retry: { attempts: 3, backoff: exponential, initial: 10ms, max: 100ms }
    errors:
      429: { action: retry, attempts: 3 }
${extra}`;

describe('http step in a flow against a misbehaving server', () => {
  it('ends every message delivered or dead-lettered with status and reason, under the rate limit', async () => {
    const kinds = ['ok', 'burst', '429', 'slow', 'reset', 'badjson', 'bad', 'ok'];
    const payloads = Array.from({ length: 40 }, (_v, i) => ({ n: i, kind: kinds[i % kinds.length] }));
    feed('src', payloads);
    const seenById = new Map<string, number>();
    server.setHandler((r, res) => {
      const id = String(r.headers['idempotency-key']);
      const n = (seenById.get(id) ?? 0) + 1;
      seenById.set(id, n);
      const p = JSON.parse(r.body) as { n: number; kind: string };
      switch (p.kind) {
        case 'burst':
          return n <= 2 ? json(res, 503, { error: 'overloaded' }) : json(res, 200, { echo: p.n, tries: n });
        case '429':
          return n === 1 ? json(res, 429, { error: 'slow down' }, { 'retry-after': '1' }) : json(res, 200, { echo: p.n, tries: n });
        case 'slow':
          setTimeout(() => json(res, 200, { late: true }), 2500);
          return;
        case 'reset':
          if (n === 1) {
            res.socket?.destroy();
            return;
          }
          return json(res, 200, { echo: p.n, tries: n });
        case 'badjson':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"echo": ');
          return;
        case 'bad':
          return json(res, 400, { error: 'field n is invalid' });
        default:
          return json(res, 200, { echo: p.n, tries: n });
      }
    });
    const yaml = `${services(server.url)}    endpoints:
      echo: { method: POST, path: "/echo/{n}", timeout: 1s, circuitBreaker: { failureRatio: 0.95, minCalls: 200 } }
flows:
  f:
    source: { memory: { name: src } }
    batchSize: 8
    errors: { retry: { attempts: 2, initial: 10ms, max: 20ms } }
    steps:
      - http: { service: api, endpoint: echo, params: { n: "\${payload.n}" }, into: response }
    sink: { memory: { name: out } }
`;
    t = await engineFromYaml(yaml, registry);
    const start = Date.now();
    t.engine.start();
    await t.engine.done();
    const stats = t.engine.stats()['f'];
    const out = receivedBy('out');
    const dead = await t.store.listDeadLetters({ flow: 'f' });
    expect(stats?.in).toBe(40);
    expect((stats?.out ?? 0) + (stats?.deadLettered ?? 0)).toBe(40);
    const why = dead.map((d) => `${(d.message.payload as { kind: string }).kind}: ${d.reason}`).join('\n');
    expect(out, why).toHaveLength(25);
    expect(dead).toHaveLength(15);
    const delivered = new Set(out.map((m) => (m.payload as { n: number }).n));
    const deadKinds = dead.map((d) => (d.message.payload as { kind: string }).kind);
    for (const p of payloads) {
      const isDead = ['slow', 'badjson', 'bad'].includes(p.kind as string);
      expect(delivered.has(p.n)).toBe(!isDead);
    }
    expect(deadKinds.sort()).toEqual([...Array(5).fill('bad'), ...Array(5).fill('badjson'), ...Array(5).fill('slow')]);
    for (const d of dead) {
      const kind = (d.message.payload as { kind: string }).kind;
      if (kind === 'bad') expect(d.reason).toMatch(/HTTP 400.*field n is invalid/);
      if (kind === 'badjson') expect(d.reason).toMatch(/malformed JSON/);
      if (kind === 'slow') expect(d.reason).toMatch(/no answer within 1000ms/);
    }
    // the merged response is on each delivered payload, with the server's try count
    const burst = out.find((m) => (m.payload as { kind: string }).kind === 'burst');
    expect(burst?.payload).toMatchObject({ response: { tries: 3 } });
    expect(burst?.meta['http']).toMatchObject({ status: 200, attempts: 3 });
    // The declared 40/s held for every request the server saw, retries included: by any arrival
    // time at most 1 + 40·(t − start)/1 s had arrived (true on a loaded machine too).
    expect(server.requests.length).toBeGreaterThan(40);
    expect(tokenBucketExcess(server.requests.map((r) => r.at), start, { count: 40, perMs: 1000 })).toBeLessThanOrEqual(0);
  }, 30_000);
});

describe('http source', () => {
  it('follows cursor pagination, stops on a repeated cursor, checkpoints after the sink settled, resumes by watermark', async () => {
    const pages: Record<string, { data: { id: number; updated: number }[]; next: string | null }> = {
      '': { data: [{ id: 1, updated: 10 }, { id: 2, updated: 11 }], next: 'c2' },
      c2: { data: [{ id: 3, updated: 12 }], next: 'c3' },
      c3: { data: [{ id: 4, updated: 13 }], next: 'c2' }, // a server looping back: must stop
    };
    server.setHandler((r, res) => {
      const u = new URL(r.url, 'http://x');
      if (u.searchParams.get('since')) return json(res, 200, { data: [{ id: 5, updated: 14 }], next: null });
      json(res, 200, pages[u.searchParams.get('cursor') ?? ''] ?? { data: [], next: null });
    });
    const yaml = `${services(server.url)}    endpoints:
      list: { method: GET, path: /items, paginate: { type: cursor, param: cursor, next: "$.next", items: "$.data" } }
flows:
  f:
    source: { http: { service: api, endpoint: list, watermark: { field: updated, param: since } } }
    sink: { memory: { name: out } }
`;
    t = await engineFromYaml(yaml, registry);
    t.engine.start();
    await t.engine.done();
    expect(receivedBy('out').map((m) => [m.id, (m.payload as { id: number }).id])).toEqual([
      ['api.list:1', 1],
      ['api.list:2', 2],
      ['api.list:3', 3],
      ['api.list:4', 4],
    ]);
    expect(server.requests.map((r) => r.url)).toEqual(['/items', '/items?cursor=c2', '/items?cursor=c3']);
    // a second engine on the same store resumes from the watermark
    const dir = t.dir;
    const store = t.store;
    await t.engine.stop(1000);
    resetMemory();
    t = await engineFromYaml(yaml, registry, { dir, store });
    t.engine.start();
    await t.engine.done();
    expect(server.requests.at(-1)?.url).toBe('/items?since=13');
    expect(receivedBy('out').map((m) => (m.payload as { id: number }).id)).toEqual([5]);
  });
});

describe('http sink', () => {
  it('sends each message; failures are reported per message and dead-lettered with the status', async () => {
    feed('src', [{ n: 1 }, { n: 2, bad: true }, { n: 3 }]);
    server.setHandler((r, res) => {
      const p = JSON.parse(r.body) as { bad?: boolean };
      json(res, p.bad ? 422 : 201, p.bad ? { error: 'unprocessable' } : { ok: true });
    });
    const yaml = `${services(server.url)}    endpoints:
      create: { method: POST, path: /things }
flows:
  f:
    source: { memory: { name: src } }
    sink: { http: { service: api, endpoint: create } }
`;
    t = await engineFromYaml(yaml, registry);
    t.engine.start();
    await t.engine.done();
    expect(t.engine.stats()['f']).toMatchObject({ in: 3, out: 2, deadLettered: 1 });
    const dead = await t.store.listDeadLetters({ flow: 'f' });
    expect(dead[0]?.reason).toMatch(/HTTP 422.*unprocessable/);
    expect(server.requests.filter((r) => r.body.includes('"n":2'))).toHaveLength(1); // a 4xx is not retried
  });

  it('sends a batch in one call', async () => {
    feed('src', [1, 2, 3, 4, 5]);
    const yaml = `${services(server.url)}    endpoints:
      bulk: { method: POST, path: /bulk }
flows:
  f:
    source: { memory: { name: src } }
    batchSize: 5
    sink: { http: { service: api, endpoint: bulk, batch: true, body: { records: "\${messages}" } } }
`;
    t = await engineFromYaml(yaml, registry);
    t.engine.start();
    await t.engine.done();
    expect(server.requests).toHaveLength(1);
    expect(JSON.parse(server.requests[0]?.body ?? '')).toEqual({ records: [1, 2, 3, 4, 5] });
    expect(t.engine.stats()['f']?.out).toBe(5);
  });
});
