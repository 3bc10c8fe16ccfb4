import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/clock.js';
import { IxError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import { FakeClock, flush } from '../../testing/fake-clock.js';
import { RestService, type ServiceDeps } from './client.js';
import type { ServiceConfig } from './config.js';
import { breakerStates } from './metrics.js';
import { json, RecordingAgent, TestServer, tokenBucketExcess } from './test-server.js';

const deps = (extra: Partial<ServiceDeps> = {}): ServiceDeps => ({ clock: systemClock, logger: silentLogger, baseDir: '.', random: () => 0.5, ...extra });

function service(url: string, cfg: Partial<ServiceConfig>, d: Partial<ServiceDeps> = {}): RestService {
  return new RestService('svc', { type: 'rest', baseUrl: url, timeout: '2s', connectTimeout: '1s', maxConcurrent: 64, connections: 16, endpoints: {}, ...cfg } as ServiceConfig, deps(d));
}

async function failure(p: Promise<unknown>): Promise<IxError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof IxError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

let server: TestServer;
let svc: RestService | undefined;
beforeEach(async () => {
  server = await new TestServer((_r, res) => json(res, 200, { ok: true })).start();
});
afterEach(async () => {
  await svc?.close();
  svc = undefined;
  await server.stop();
});

describe('RestService calls', () => {
  it('fills path parameters, query templates and a JSON body; parses JSON', async () => {
    server.setHandler((r, res) => json(res, 201, { got: r.url, body: JSON.parse(r.body), ct: r.headers['content-type'], h: r.headers['x-team'] }));
    svc = service(`${server.url}/v1`, {
      headers: { 'X-Team': 'core' },
      endpoints: {
        create: { method: 'POST', path: '/users/{id}/notes', query: { tag: '${payload.tag}', fixed: 1 }, body: { text: '${payload.text}', n: '${payload.n}' } },
      },
    });
    const res = await svc.call('create', { params: { id: 'a b' }, scope: { payload: { tag: 'x&y', text: 'hi', n: 3 } } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ got: '/v1/users/a%20b/notes?tag=x%26y&fixed=1', body: { text: 'hi', n: 3 }, ct: 'application/json', h: 'core' });
    expect(res.attempts).toBe(1);
  });

  it('refuses a URL whose href starts with the origin but names another host (user info before an @)', async () => {
    svc = service(server.url, { endpoints: { get: { method: 'GET', path: '/x' } } });
    const err = await failure(svc.call('get', { url: `${server.url}@example.invalid/x` }));
    expect(err.code).toBe('IX_SERVICE_CONFIG');
    expect(err.message).toMatch(/not the service's origin/);
    expect(server.requests).toHaveLength(0);
    // on the origin, with a path of its own, the call goes
    expect((await svc.call('get', { url: `${server.url}/y?z=1` })).status).toBe(200);
  });

  it("aborts the calls under a signal when it aborts: those in flight and those waiting for the bulkhead, not the others", async () => {
    server.setHandler((r, res) => {
      if (r.url === '/slow') setTimeout(() => json(res, 200, { late: true }), 1500);
      else json(res, 200, { ok: true });
    });
    svc = service(server.url, { maxConcurrent: 2, endpoints: { slow: { method: 'GET', path: '/slow' }, fast: { method: 'GET', path: '/fast' } } });
    const flow = new AbortController();
    const started = Date.now();
    const inFlight = [svc.call('slow', { signal: flow.signal }), svc.call('slow', { signal: flow.signal })];
    const waiting = svc.call('slow', { signal: flow.signal });
    const other = svc.call('fast');
    await new Promise((r) => setTimeout(r, 100));
    flow.abort(new Error('flow stopped'));
    for (const p of [...inFlight, waiting]) await expect(p).rejects.toThrow('flow stopped');
    expect(Date.now() - started).toBeLessThan(1000);
    expect((await other).status).toBe(200);
    expect(server.requests.filter((r) => r.url === '/slow')).toHaveLength(2);
  });

  it('retries a burst of 503 with backoff and succeeds', async () => {
    server.setHandler((_r, res, n) => (n <= 3 ? json(res, 503, { error: 'busy' }) : json(res, 200, { ok: n })));
    svc = service(server.url, { retry: { attempts: 5, backoff: 'exponential', initial: '5ms', max: '50ms', jitter: true }, endpoints: { get: { method: 'GET', path: '/x' } } });
    const res = await svc.call('get');
    expect(res.body).toEqual({ ok: 4 });
    expect(res.attempts).toBe(4);
    expect(server.requests).toHaveLength(4);
  });

  it('gives up after the bounded attempts with the status and reason, not retryable', async () => {
    server.setHandler((_r, res) => json(res, 503, { error: 'still busy' }));
    svc = service(server.url, { retry: { attempts: 3, backoff: 'fixed', initial: '1ms', max: '1ms', jitter: false }, endpoints: { get: { method: 'GET', path: '/x' } } });
    const err = await failure(svc.call('get'));
    expect(err.code).toBe('IX_SERVICE_HTTP');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('HTTP 503');
    expect(err.message).toContain('still busy');
    expect(err.message).toContain('after 3 attempts');
    expect(server.requests).toHaveLength(3);
  });

  it('honours Retry-After in seconds on the injected clock (a 2-minute wait runs instantly)', async () => {
    const clock = new FakeClock(Date.now());
    server.setHandler((_r, res, n) => (n === 1 ? json(res, 429, {}, { 'retry-after': '120' }) : json(res, 200, { ok: true })));
    svc = service(server.url, { endpoints: { get: { method: 'GET', path: '/x' } } }, { clock });
    const p = svc.call('get');
    for (let i = 0; i < 50 && clock.pending === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(clock.pending).toBe(1);
    expect((clock.nextAt() as number) - clock.now()).toBe(120_000);
    await clock.advance(119_000);
    expect(server.requests).toHaveLength(1);
    await clock.advance(1_000);
    const res = await p;
    expect(res.status).toBe(200);
    expect(server.requests).toHaveLength(2);
  });

  it('honours Retry-After as an HTTP date, capped by maxWait', async () => {
    const clock = new FakeClock(Date.now());
    const at = new Date(clock.now() + 30_000).toUTCString();
    server.setHandler((_r, res, n) => (n === 1 ? json(res, 503, {}, { 'retry-after': at }) : json(res, 200, {})));
    svc = service(server.url, { errors: { '503': { action: 'retry', maxWait: '10s' } }, endpoints: { get: { method: 'GET', path: '/x' } } }, { clock });
    const p = svc.call('get');
    for (let i = 0; i < 50 && clock.pending === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect((clock.nextAt() as number) - clock.now()).toBe(10_000);
    await clock.advance(10_000);
    expect((await p).status).toBe(200);
  });

  it('times out a slow answer, retries, then reports the timeout', async () => {
    server.setHandler((_r, res) => {
      setTimeout(() => json(res, 200, { late: true }), 600);
    });
    svc = service(server.url, { timeout: '100ms', retry: { attempts: 2, backoff: 'fixed', initial: '1ms', max: '1ms', jitter: false }, endpoints: { get: { method: 'GET', path: '/slow' } } });
    const started = Date.now();
    const err = await failure(svc.call('get'));
    expect(err.code).toBe('IX_SERVICE_TIMEOUT');
    expect(err.retryable).toBe(false);
    expect(Date.now() - started).toBeLessThan(590);
    expect(server.requests).toHaveLength(2);
  });

  it('retries connection resets', async () => {
    server.setHandler((_r, res, n) => {
      if (n <= 2) res.socket?.destroy();
      else json(res, 200, { n });
    });
    svc = service(server.url, { retry: { attempts: 4, backoff: 'fixed', initial: '1ms', max: '1ms', jitter: false }, endpoints: { get: { method: 'GET', path: '/x' } } });
    const res = await svc.call('get');
    expect(res.body).toEqual({ n: 3 });
  });

  it('dead-letters malformed JSON with the parse error', async () => {
    server.setHandler((_r, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"a": 1,');
    });
    svc = service(server.url, { endpoints: { get: { method: 'GET', path: '/x' } } });
    const err = await failure(svc.call('get'));
    expect(err.code).toBe('IX_SERVICE_BAD_RESPONSE');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/malformed JSON/);
  });

  it('checks a 2xx body against the response schema when asked: a mismatch is an invalid response naming the violations', async () => {
    let body: unknown = { id: 'u1', total: 3 };
    server.setHandler((_r, res) => json(res, 200, body));
    const schema = { type: 'object', required: ['id', 'total'], properties: { id: { type: 'string' }, total: { type: 'number' } } };
    svc = service(server.url, {
      endpoints: {
        checked: { method: 'GET', path: '/x', response: { schema, validate: true } },
        documented: { method: 'GET', path: '/x', response: { schema } },
        retried: { method: 'GET', path: '/x', response: { schema, validate: true }, errors: { 'invalid-response': { action: 'retry', attempts: 2 } }, retry: { attempts: 3, backoff: 'fixed', initial: '1ms', max: '1ms', jitter: false } },
      },
    } as Partial<ServiceConfig>);
    expect((await svc.call('checked')).body).toEqual(body);
    body = { id: 7 };
    const err = await failure(svc.call('checked'));
    expect(err.code).toBe('IX_SERVICE_BAD_RESPONSE');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/^svc\.checked: malformed response: 200 does not match the response schema: /);
    expect(err.message).toContain('/id must be string');
    expect(err.message).toContain('/total is required');
    expect((await svc.call('documented')).body).toEqual({ id: 7 }); // a schema without validate is documentation
    const before = server.requests.length;
    expect((await failure(svc.call('retried'))).message).toMatch(/gave up after 2 attempts/);
    expect(server.requests.length - before).toBe(2);
  });

  it('maps statuses through the errors table: dead-letter, fail, per-rule attempts, disable', async () => {
    let status = 400;
    server.setHandler((_r, res) => json(res, status, { error: `s${status}` }));
    svc = service(server.url, {
      retry: { attempts: 5, backoff: 'fixed', initial: '1ms', max: '1ms', jitter: false },
      errors: { '409': { action: 'fail' }, '503': { action: 'retry', attempts: 2 }, '410': { action: 'disable' } },
      endpoints: { get: { method: 'GET', path: '/x' } },
    });
    let err = await failure(svc.call('get'));
    expect([err.code, err.retryable, err.params['status']]).toEqual(['IX_SERVICE_HTTP', false, 400]);
    status = 409;
    err = await failure(svc.call('get'));
    expect([err.retryable, err.params['status']]).toEqual([true, 409]);
    status = 503;
    const before = server.requests.length;
    err = await failure(svc.call('get'));
    expect(server.requests.length - before).toBe(2);
    status = 410;
    err = await failure(svc.call('get'));
    expect(err.code).toBe('IX_SERVICE_DISABLED');
    const n = server.requests.length;
    status = 200;
    err = await failure(svc.call('get'));
    expect(err.code).toBe('IX_SERVICE_DISABLED');
    expect(err.message).toContain('HTTP 410');
    expect(server.requests.length).toBe(n);
  });

  it('opens the circuit breaker on a failure ratio, rejects while open, closes after a half-open probe', async () => {
    let healthy = false;
    server.setHandler((_r, res) => (healthy ? json(res, 200, {}) : json(res, 500, {})));
    svc = service(server.url, {
      retry: { attempts: 1, backoff: 'fixed', initial: '1ms', max: '1ms', jitter: false },
      circuitBreaker: { failureRatio: 0.5, minCalls: 4, window: '2s', halfOpenAfter: '300ms' },
      endpoints: { brk: { method: 'GET', path: '/x' } },
    });
    const codes: string[] = [];
    for (let i = 0; i < 10; i++) codes.push((await failure(svc.call('brk'))).code);
    expect(codes).toContain('IX_SERVICE_CIRCUIT_OPEN');
    const open = (await failure(svc.call('brk'))) as IxError;
    expect(open.code).toBe('IX_SERVICE_CIRCUIT_OPEN');
    expect(open.retryable).toBe(true);
    expect(breakerStates().get('svc.brk')).toBe('open');
    const sent = server.requests.length;
    expect(sent).toBeLessThan(10);
    healthy = true;
    await new Promise((r) => setTimeout(r, 350));
    expect((await svc.call('brk')).status).toBe(200);
    expect(breakerStates().get('svc.brk')).toBe('closed');
  });

  it('keeps calls within the bulkhead', async () => {
    let inFlight = 0;
    let peak = 0;
    server.setHandler((_r, res) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      setTimeout(() => {
        inFlight--;
        json(res, 200, {});
      }, 20);
    });
    svc = service(server.url, { maxConcurrent: 3, endpoints: { get: { method: 'GET', path: '/x' } } });
    await Promise.all(Array.from({ length: 12 }, () => svc?.call('get')));
    expect(peak).toBe(3);
    expect(server.requests).toHaveLength(12);
  });

  it('sends If-None-Match with the last ETag and returns the cached body on 304', async () => {
    server.setHandler((r, res) => {
      if (r.headers['if-none-match'] === '"v1"') {
        res.writeHead(304, { etag: '"v1"' });
        res.end();
      } else json(res, 200, { v: 1 }, { etag: '"v1"' });
    });
    svc = service(server.url, { endpoints: { get: { method: 'GET', path: '/x', conditional: true } } });
    const a = await svc.call('get');
    const b = await svc.call('get');
    expect([a.notModified, b.notModified, b.status]).toEqual([false, true, 304]);
    expect(b.body).toEqual({ v: 1 });
    expect(server.requests[1]?.headers['if-none-match']).toBe('"v1"');
  });
});

describe('rate limits through the store', () => {
  it('holds a per-service limit: arrivals stay inside the token bucket, no call dropped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-rate-'));
    const store = new SqliteStore(join(dir, 'state.db'));
    const agent = new RecordingAgent({ connections: 16 });
    try {
      svc = service(server.url, { rateLimit: '20/s', endpoints: { get: { method: 'GET', path: '/x/{n}' } } }, { rateGate: store, dispatcher: agent });
      const start = Date.now();
      const results = await Promise.all(Array.from({ length: 30 }, (_v, n) => svc?.call('get', { params: { n } })));
      expect(results.every((r) => r?.status === 200)).toBe(true);
      // the receiving server saw every call exactly once
      expect(server.requests.map((r) => r.url).sort()).toEqual(Array.from({ length: 30 }, (_v, n) => `/x/${n}`).sort());
      // by any arrival time t at most 1 + 20·(t − start)/1 s calls had arrived (transit delays under
      // load only make arrivals later, so this holds on a loaded machine too)
      expect(tokenBucketExcess(server.requests.map((r) => r.at), start, { count: 20, perMs: 1000 })).toBeLessThanOrEqual(0);
      expect(agent.sent).toHaveLength(30);
      // a limiter that did nothing would fail this: 30 calls at once are 29 over the bucket
      expect(tokenBucketExcess(Array.from({ length: 30 }, () => start), start, { count: 20, perMs: 1000 })).toBeGreaterThan(0);
    } finally {
      await agent.close();
      await store.close();
    }
  });

  it('shares one limit between two services on one store (two processes would share it the same way)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-rate-'));
    const store = new SqliteStore(join(dir, 'state.db'));
    const cfg: Partial<ServiceConfig> = { rateLimit: '40/s', endpoints: { get: { method: 'GET', path: '/x' } } };
    const a = service(server.url, cfg, { rateGate: store });
    const b = service(server.url, cfg, { rateGate: store });
    try {
      const start = Date.now();
      await Promise.all(Array.from({ length: 40 }, (_v, i) => (i % 2 ? a : b).call('get')));
      expect(server.requests).toHaveLength(40);
      // two senders drawing from the same bucket: together they stay inside it
      expect(tokenBucketExcess(server.requests.map((r) => r.at), start, { count: 40, perMs: 1000 })).toBeLessThanOrEqual(0);
    } finally {
      await a.close();
      await b.close();
      await store.close();
    }
  });

  it('keeps one bucket per key expression (per tenant) and per endpoint', async () => {
    const clock = new FakeClock(Date.now());
    svc = service(
      server.url,
      { endpoints: { get: { method: 'GET', path: '/t/${payload.tenant}', rateLimit: { limit: '2/min', key: '${payload.tenant}' } } } },
      { clock },
    );
    const calls = ['a', 'a', 'a', 'b', 'b'].map((tenant) => svc?.call('get', { scope: { payload: { tenant } } }));
    for (let i = 0; i < 100 && server.requests.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    await flush();
    // each tenant's first call goes at once; the second waits 30 s on the clock
    expect(server.requests.map((r) => r.url).sort()).toEqual(['/t/a', '/t/b']);
    await clock.advance(30_000);
    for (let i = 0; i < 100 && server.requests.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
    expect(server.requests).toHaveLength(4);
    await clock.advance(30_000);
    await Promise.all(calls);
    expect(server.requests.filter((r) => r.url === '/t/a')).toHaveLength(3);
  });
});
