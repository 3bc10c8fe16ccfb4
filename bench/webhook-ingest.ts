/**
 * `webhook-ingest`: autocannon against verified webhook ingest through the real engine
 * (`startApp` with a `webhook` source spec: Standard Webhooks verification, the durable SQLite
 * inbox with fsync on commit, 2xx only after the commit, the flow draining the inbox into a
 * sink at the same time) next to a bare Fastify route that answers 200 and does nothing, on
 * the same client load. autocannon runs in a child process; both servers run in this one.
 * After a warm-up of each, rounds alternate bare / ours; the result is the median of rounds.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import Fastify from 'fastify';
import { startApp } from '../src/app/app.js';
import { createRegistry } from '../src/app/registry.js';
import { silentLogger } from '../src/core/logger.js';
import { defineSink } from '../src/registry/registry.js';
import { type Bench, type BenchOptions, type BenchResult, median, pairedRatio, round, RssSampler } from './harness.js';
import type { Load, LoadSpec } from './webhook-load.js';

const SECRET = 'whsec_' + Buffer.from('bench-secret-for-webhook-ingest!').toString('base64');
const CONNECTIONS = 50;

/** Runs autocannon in a child process against `url`. */
function load(url: string, seconds: number): Promise<Load> {
  const spec: LoadSpec = { url, seconds, connections: CONNECTIONS, secret: SECRET };
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'webhook-load.ts'), JSON.stringify(spec)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`autocannon child exited with ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Load);
    });
  });
}


export const webhookIngestBench: Bench = {
  name: 'webhook-ingest',
  summary: 'verified, durable webhook ingest through the engine vs a bare Fastify 200 route (autocannon in a child process)',
  async run(options: BenchOptions): Promise<BenchResult> {
    const seconds = options.quick ? 4 : 15;
    const rounds = options.quick ? 3 : 5;
    const rss = new RssSampler().start();

    // baseline: a bare Fastify route answering 200
    const bare = Fastify({ logger: false });
    bare.post('/hooks', async () => 'ok');
    await bare.listen({ host: '127.0.0.1', port: 0 });
    const bareAddr = bare.server.address();
    const bareUrl = `http://127.0.0.1:${typeof bareAddr === 'object' && bareAddr ? bareAddr.port : 0}/hooks`;

    // ours: the engine, its public listener, a webhook source flow and the durable store
    const dir = mkdtempSync(join(tmpdir(), 'ix-bench-ingest-'));
    let drained = 0;
    const registry = createRegistry();
    registry.registerSink(
      defineSink({
        kind: 'count',
        summary: 'Counts the webhooks the flow took from the inbox.',
        config: Type.Object({}),
        create: () => ({
          write(batch) {
            drained += batch.length;
            return Promise.resolve();
          },
        }),
      }),
    );
    writeFileSync(
      join(dir, 'spec.yaml'),
      `version: 1
secrets: { HOOK: env:IX_BENCH_HOOK_SECRET }
http: { listen: "127.0.0.1:0" }
admin: { enabled: false }
flows:
  hooks:
    source: { webhook: { path: /hooks, verify: { scheme: standard-webhooks, secret: "\${secrets.HOOK}" }, maxPending: 10000 } }
    sink: { count: {} }
`,
    );
    const app = await startApp({
      specFile: join(dir, 'spec.yaml'),
      store: `sqlite:${join(dir, 'state.db')}`,
      registry,
      logger: silentLogger,
      env: { IX_BENCH_HOOK_SECRET: SECRET },
    });
    const url = `http://${app.httpAddress ?? ''}/hooks`;
    let accepted = 0;
    try {
      await load(bareUrl, 2); // warm-up
      accepted += (await load(url, 2)).ok;
      const base: Load[] = [];
      const mine: Load[] = [];
      for (let r = 0; r < rounds; r++) {
        base.push(await load(bareUrl, seconds));
        const l = await load(url, seconds);
        accepted += l.ok;
        mine.push(l);
      }
      // every 2xx was persisted: the flow takes each one from the inbox (a few more were persisted
      // while autocannon stopped at the end of a round, before it counted their answer)
      const loads = rounds + 1;
      const deadline = Date.now() + 120_000;
      while (drained < accepted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 500));
      if (drained < accepted || drained > accepted + CONNECTIONS * loads) {
        throw new Error(`the flow took ${drained} webhooks from the inbox, ${accepted} were answered 2xx`);
      }
      const rssMB = rss.stop();

      const fmt = (xs: Load[]): string => xs.map((x) => `${x.rps.toFixed(0)} req/s p99 ${x.p99} ms`).join(', ');
      console.log(`bare Fastify:    ${fmt(base)} — ${seconds} s per round, ${CONNECTIONS} connections`);
      console.log(`webhook ingest:  ${fmt(mine)} (${mine.reduce((s, x) => s + x.non2xx, 0)} non-2xx, ${mine.reduce((s, x) => s + x.errors, 0)} errors)`);
      console.log(`the flow drained ${drained} persisted webhooks from the inbox`);
      return {
        bench: 'webhook-ingest',
        unit: 'requests/s',
        ours: Math.round(median(mine.map((x) => x.rps))),
        baseline: Math.round(median(base.map((x) => x.rps))),
        ratio: round(pairedRatio(mine.map((x) => x.rps), base.map((x) => x.rps))),
        rssMB,
        p99Ms: median(mine.map((x) => x.p99)),
        p50Ms: median(mine.map((x) => x.p50)),
        baselineP99Ms: median(base.map((x) => x.p99)),
        non2xx: mine.reduce((s, x) => s + x.non2xx, 0),
        answered2xx: accepted,
        drained,
        connections: CONNECTIONS,
        seconds,
        rounds,
        note: 'ours = startApp with a webhook source flow: Standard Webhooks verification + SQLite inbox (synchronous=FULL) committed before each 2xx, drained by the flow meanwhile; baseline = bare Fastify POST route answering 200; autocannon in a child process; alternating rounds after a warm-up, medians (ratio = median of back-to-back round ratios); rssMB = this process (both servers)',
      };
    } finally {
      await app.stop();
      await bare.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
