/**
 * `webhook-ingest`: autocannon against verified webhook ingest (Standard Webhooks signature
 * check, durable SQLite inbox with fsync on commit, 2xx only after the commit) next to a bare
 * Fastify route that answers 200 and does nothing, in the same run, on the same client load.
 * Every request carries a fresh id and signature (both servers get the same requests).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { Webhook } from 'standardwebhooks';
import { PublicServer } from '../src/app/public-server.js';
import { silentLogger } from '../src/core/logger.js';
import { resolveSourceSettings, WebhookSource } from '../src/connectors/webhook/source.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { inboxQueue } from '../src/store/types.js';
import { sourceContext } from '../src/testing/contexts.js';
import { RssSampler, type Bench, type BenchOptions, type BenchResult } from './harness.js';

const SECRET = 'whsec_' + Buffer.from('bench-secret-for-webhook-ingest!').toString('base64');

interface Load {
  rps: number;
  p99: number;
  p50: number;
  non2xx: number;
  errors: number;
  requests: number;
}

async function load(url: string, seconds: number, connections: number): Promise<Load> {
  const signer = new Webhook(SECRET);
  let n = 0;
  const prefix = Math.random().toString(36).slice(2, 8);
  const result = await autocannon({
    url,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => {
          const id = `evt_${prefix}_${n++}`;
          const body = JSON.stringify({ id, type: 'order.created', data: { order: n, total: 42.5, currency: 'EUR', customer: 'c-123' } });
          const now = new Date();
          return {
            ...req,
            body,
            headers: {
              'content-type': 'application/json',
              'webhook-id': id,
              'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
              'webhook-signature': signer.sign(id, now, body),
            },
          };
        },
      },
    ],
  });
  return {
    rps: result.requests.average,
    p99: result.latency.p99,
    p50: result.latency.p50,
    non2xx: result.non2xx,
    errors: result.errors,
    requests: result.requests.total,
  };
}

export const webhookIngestBench: Bench = {
  name: 'webhook-ingest',
  summary: 'verified, durable webhook ingest vs a bare Fastify 200 route (autocannon)',
  async run(options: BenchOptions): Promise<BenchResult> {
    const seconds = options.quick ? 8 : 30;
    const connections = 50;
    const rss = new RssSampler().start();

    // baseline: a bare Fastify route answering 200
    const bare = Fastify({ logger: false });
    bare.post('/hooks', async () => 'ok');
    await bare.listen({ host: '127.0.0.1', port: 0 });
    const bareAddr = bare.server.address();
    const bareUrl = `http://127.0.0.1:${typeof bareAddr === 'object' && bareAddr ? bareAddr.port : 0}/hooks`;
    await load(bareUrl, 2, connections); // warm-up
    const base = await load(bareUrl, seconds, connections);
    await bare.close();

    // ours: the engine's public listener, the webhook source, a SQLite store with fsync per commit
    const dir = mkdtempSync(join(tmpdir(), 'ix-bench-ingest-'));
    const store = new SqliteStore(join(dir, 'state.db'));
    const server = new PublicServer(silentLogger);
    const ctx = sourceContext(store, server, { flow: 'bench', name: 'bench.source' });
    const source = new WebhookSource(resolveSourceSettings({ path: '/hooks', verify: { scheme: 'standard-webhooks', secret: SECRET } }));
    const running = source.run(ctx);
    const addr = await server.listen('127.0.0.1', 0);
    const url = `http://${addr}/hooks`;
    await load(url, 2, connections); // warm-up
    const ours = await load(url, seconds, connections);
    const stats = await store.queueStats(inboxQueue('bench'));
    ctx.stop();
    await running;
    await server.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    const rssMB = rss.stop();

    console.log(`bare Fastify:      ${base.rps.toFixed(0)} req/s, p50 ${base.p50} ms, p99 ${base.p99} ms (${base.requests} requests)`);
    console.log(`webhook ingest:    ${ours.rps.toFixed(0)} req/s, p50 ${ours.p50} ms, p99 ${ours.p99} ms (${ours.requests} requests, ${ours.non2xx} non-2xx, ${ours.errors} errors)`);
    console.log(`inbox holds ${stats.ready + stats.scheduled + stats.leased} persisted webhooks`);
    return {
      bench: 'webhook-ingest',
      unit: 'requests/s',
      ours: Math.round(ours.rps),
      baseline: Math.round(base.rps),
      ratio: Math.round((ours.rps / base.rps) * 1000) / 1000,
      rssMB,
      p99Ms: ours.p99,
      p50Ms: ours.p50,
      baselineP99Ms: base.p99,
      non2xx: ours.non2xx,
      persisted: stats.ready + stats.scheduled + stats.leased,
      connections,
      seconds,
      note: 'ours = Standard Webhooks verification + SQLite inbox (synchronous=FULL) committed before each 2xx; baseline = bare Fastify POST route answering 200',
    };
  },
};
