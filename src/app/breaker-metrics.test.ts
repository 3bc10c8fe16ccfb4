import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/logger.js';
import { json, TestServer } from '../connectors/http/test-server.js';
import { startApp, type App } from './app.js';

let app: App | undefined;
let server: TestServer | undefined;
afterEach(async () => {
  await app?.stop();
  await server?.stop();
  app = undefined;
  server = undefined;
});

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: not reached in ${ms}ms (last: ${String(v).slice(0, 2000)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('circuit breaker state in the admin /metrics', () => {
  it('shows an endpoint closed, then open after a real flow trips it against a failing server', async () => {
    let failing = false;
    server = await new TestServer((_r, res) => (failing ? json(res, 503, { error: 'down' }) : json(res, 200, { ok: true }))).start();
    const dir = mkdtempSync(join(tmpdir(), 'ix-breaker-'));
    const service = `brk${process.pid}`;
    const endpoint = `ix_service_circuit_state{service="${service}",endpoint="orders"}`;
    const spec = (count: number): string =>
      [
        'version: 1',
        `store: "sqlite:${join(dir, `state-${count}.db`)}"`,
        'admin: { listen: "127.0.0.1:0" }',
        'services:',
        `  ${service}:`,
        `    baseUrl: ${server?.url ?? ''}`,
        '    timeout: 5s',
        '    retry: { attempts: 1 }',
        '    circuitBreaker: { failureRatio: 0.5, minCalls: 3, window: 60s, halfOpenAfter: 10m }',
        '    errors: { 5xx: { action: dead-letter } }',
        '    endpoints:',
        '      orders: { method: POST, path: /orders }',
        'flows:',
        '  push:',
        '    concurrency: 1',
        '    batchSize: 1',
        `    source: { generate: { count: ${count}, payload: { n: 1 } } }`,
        `    sink: { http: { service: ${service}, endpoint: orders } }`,
        '    errors: { retry: { attempts: 1 }, deadLetter: true }',
      ].join('\n');
    const metrics = async (): Promise<string> => (await fetch(`http://${app?.adminAddress ?? ''}/metrics`)).text();

    // A healthy endpoint: the breaker exists and is closed.
    writeFileSync(join(dir, 'ok.yaml'), spec(2));
    app = await startApp({ specFile: join(dir, 'ok.yaml'), logger: silentLogger });
    await until('closed', metrics, (m) => m.includes(`${endpoint} 0`) && m.includes('ix_flow_messages_out_total{flow="push"} 2'));
    await app.stop();
    app = undefined;

    // The server fails: 503s trip the breaker, later messages are refused without a request.
    failing = true;
    const before = server.requests.length;
    writeFileSync(join(dir, 'down.yaml'), spec(20));
    app = await startApp({ specFile: join(dir, 'down.yaml'), logger: silentLogger });
    const text = await until('open', metrics, (m) => m.includes(`${endpoint} 2`) && m.includes('ix_flow_messages_dead_lettered_total{flow="push"} 20'));
    expect(text).toMatch(new RegExp(`ix_service_calls_total\\{service="${service}",endpoint="orders",status="circuit-open"\\} [1-9]`));
    expect(server.requests.length - before).toBeLessThan(20); // the open circuit spared the server
  }, 120_000);
});
