/**
 * The two sides of `http-call`, run as plain Node on an esbuild bundle of this script (as `ix`
 * runs dist/ix.mjs, and as the pipeline bench runs both of its sides): the flow with the http
 * step, and the raw undici request loop next to it, in one process, round after round. Prints
 * one JSON line: the rounds of each side and the peak RSS. Arguments: calls per round, rounds,
 * `policies` or `no-policies`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { Agent, request } from 'undici';
import { startApp } from '../src/app/app.js';
import { createRegistry } from '../src/app/registry.js';
import { silentLogger } from '../src/core/logger.js';
import { defineSink } from '../src/registry/registry.js';
import { RssSampler } from './harness.js';

const CONCURRENCY = 16;
/** Both sides are timed from the SKIP-th completed call to the last (start-up and ramp excluded). */
const SKIP = 500;

/**
 * Wall time and this process's CPU time between the SKIP-th completed call and the last. The
 * CPU time is read twice per round only (a getrusage per call would cost both sides several
 * µs a call and pull the ratio towards 1).
 */
class Span {
  private t0 = 0;
  private t1 = 0;
  private cpu0: NodeJS.CpuUsage | undefined;
  private cpu1: NodeJS.CpuUsage | undefined;
  constructor(private readonly total: number) {}
  mark(done: number): void {
    if (done === SKIP) {
      this.t0 = performance.now();
      this.cpu0 = process.cpuUsage();
    }
    if (done > SKIP) this.t1 = performance.now();
    if (done === this.total) this.cpu1 = process.cpuUsage();
  }
  result(n: number): Round {
    const calls = n - SKIP;
    const cpu = this.cpu0 && this.cpu1 ? this.cpu1.user + this.cpu1.system - this.cpu0.user - this.cpu0.system : 0;
    return { rate: calls / ((this.t1 - this.t0) / 1000), cpuUs: cpu / calls };
  }
}

export interface Round {
  /** Calls per second. */
  readonly rate: number;
  /** CPU microseconds of this process per call. */
  readonly cpuUs: number;
}

/** Configured on the service, never triggered: the endpoint answers 200 well under the limits. */
const POLICIES = `    rateLimit: 1000000/s
    retry: { attempts: 5, backoff: exponential, initial: 100ms, max: 5s }
    circuitBreaker: { failureRatio: 0.5, minCalls: 50, window: 10s, halfOpenAfter: 5s }
    errors:
      429: { action: retry, respectRetryAfter: true }
`;

/** The endpoint: echoes the id from the path with a small JSON body, keep-alive. */
const SERVER = `
const http = require('node:http');
const s = http.createServer((req, res) => {
  let n = 0;
  req.on('data', (c) => { n += c.length; });
  req.on('end', () => {
    const body = JSON.stringify({ id: req.url.slice(req.url.lastIndexOf('/') + 1), accepted: true, bytes: n });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.stdout.write(String(s.address().port) + '\\n'));
`;

async function startServer(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.stdout?.once('data', (d: Buffer) => resolve(d.toString().trim()));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

function payload(seq: number): Record<string, unknown> {
  return { seq, type: 'order.created', total: 42.5, currency: 'EUR', customer: 'c-123' };
}

async function baseline(url: string, n: number): Promise<Round> {
  const dispatcher = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 30_000 });
  let next = 0;
  let ok = 0;
  const span = new Span(n);
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) {
        const seq = ++next;
        const res = await request(`${url}/items/${seq}`, {
          method: 'POST',
          body: JSON.stringify(payload(seq)),
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          dispatcher,
        });
        const body = (await res.body.json()) as { accepted?: boolean };
        if (res.statusCode === 200 && body.accepted) ok++;
        span.mark(ok);
      }
    }),
  );
  await dispatcher.close();
  if (ok !== n) throw new Error(`baseline: ${ok} of ${n} calls answered 200`);
  return span.result(n);
}

async function ours(url: string, n: number, policies = true): Promise<Round> {
  const dir = mkdtempSync(join(tmpdir(), 'ix-bench-http-'));
  let accepted = 0;
  const span = new Span(n);
  const registry = createRegistry();
  registry.registerSink(
    defineSink({
      kind: 'count',
      summary: 'Counts messages whose http step answered 200.',
      config: Type.Object({}),
      create: () => ({
        write(batch) {
          for (const m of batch) {
            if ((m.payload as { response?: { accepted?: boolean } }).response?.accepted) accepted++;
            span.mark(accepted);
          }
          return Promise.resolve();
        },
      }),
    }),
  );
  const spec = join(dir, 'spec.yaml');
  writeFileSync(
    spec,
    `version: 1
admin: { enabled: false }
services:
  api:
    type: rest
    baseUrl: ${url}
    timeout: 10s
    maxConcurrent: ${CONCURRENCY}
    connections: ${CONCURRENCY}
${policies ? POLICIES : '    circuitBreaker: false\n'}    endpoints:
      putItem: { method: POST, path: "/items/{id}" }
flows:
  call:
    source: { generate: { count: ${n}, payload: { type: order.created, total: 42.5, currency: EUR, customer: c-123 } } }
    batchSize: 64
    concurrency: 4
    steps:
      - http: { service: api, endpoint: putItem, params: { id: "\${payload.seq}" }, into: response }
    sink: { count: {} }
`,
  );
  const app = await startApp({ specFile: spec, store: `sqlite:${join(dir, 'state.db')}`, registry, logger: silentLogger, admin: false });
  await app.done();
  const stats = app.engine.stats()['call'];
  await app.stop();
  rmSync(dir, { recursive: true, force: true });
  if (accepted !== n || stats?.out !== n) throw new Error(`ours: ${accepted} of ${n} calls accepted (flow out ${stats?.out}, dead ${stats?.deadLettered})`);
  return span.result(n);
}

/** What the script prints (its last line). */
export interface SidesResult {
  readonly base: Round[];
  readonly mine: Round[];
  readonly rssMB: number;
  readonly concurrency: number;
}

async function main(): Promise<void> {
  const [count, roundsArg, policiesArg] = process.argv.slice(2);
  const n = Number(count);
  const rounds = Number(roundsArg);
  const policies = policiesArg !== 'no-policies';
  const rss = new RssSampler().start();
  const { child, url } = await startServer();
  try {
    // warm both paths (JIT, connections) before the measured runs
    await baseline(url, Math.min(2000, n));
    await ours(url, Math.min(2000, n), policies);
    const base: Round[] = [];
    const mine: Round[] = [];
    for (let r = 0; r < rounds; r++) {
      base.push(await baseline(url, n));
      mine.push(await ours(url, n, policies));
    }
    const result: SidesResult = { base, mine, rssMB: rss.stop(), concurrency: CONCURRENCY };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    child.kill();
  }
}

await main();
process.exit(0);
