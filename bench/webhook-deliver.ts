/**
 * `webhook-deliver`: signed, durable webhook deliveries per second to a local receiver (the
 * webhook sink: durable outbox in SQLite with fsync, Standard Webhooks signing, every attempt
 * recorded) next to a raw undici loop posting the same bodies with the same concurrency. The
 * receiver runs in a child process so it does not share the measured event loop. After a
 * full-size warm-up round of each, rounds alternate baseline / ours; the result is the median of rounds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { createMessage } from '../src/core/message.js';
import { resolveSinkSettings, WebhookSink } from '../src/connectors/webhook/sink.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { componentContext } from '../src/testing/contexts.js';
import { type Bench, type BenchOptions, type BenchResult, median, pairedRatio, round, RssSampler } from './harness.js';

const SECRET = 'whsec_' + Buffer.from('bench-secret-for-webhook-deliver').toString('base64');
const CONCURRENCY = 16;
const BATCH = 500;

/** The receiver: 204 to every POST; GET /stats says how many it saw and how many were signed. */
const RECEIVER = `
const http = require('node:http');
let received = 0, signed = 0;
const s = http.createServer((req, res) => {
  if (req.method === 'GET') {
    const b = JSON.stringify({ received, signed });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
    res.end(b);
    return;
  }
  if (req.headers['webhook-signature']) signed++;
  req.resume();
  req.on('end', () => { received++; res.writeHead(204).end(); });
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.stdout.write(String(s.address().port) + '\\n'));
`;

async function startReceiver(): Promise<{ child: ChildProcess; url: string; stats(): Promise<{ received: number; signed: number }> }> {
  const child = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.stdout?.once('data', (d: Buffer) => resolve(d.toString().trim()));
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    child,
    url: `${base}/in`,
    async stats() {
      const r = await request(`${base}/stats`);
      return (await r.body.json()) as { received: number; signed: number };
    },
  };
}

function body(i: number): unknown {
  return { id: `evt_${i}`, type: 'order.created', data: { order: i, total: 42.5, currency: 'EUR', customer: 'c-123', lines: [{ sku: 'A-1', qty: 2 }] } };
}

interface Round {
  readonly rate: number;
  readonly attempts: number;
}

/** A raw undici loop: same bodies, same concurrency, no signing, no store. */
async function baseline(url: string, n: number): Promise<Round> {
  const dispatcher = new Agent({ connections: CONCURRENCY });
  const bodies = Array.from({ length: n }, (_, i) => JSON.stringify(body(i)));
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) {
        const i = next++;
        const r = await request(url, { method: 'POST', body: bodies[i], headers: { 'content-type': 'application/json' }, dispatcher });
        await r.body.dump();
        if (r.statusCode !== 204) throw new Error(`baseline: the receiver answered ${r.statusCode}`);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  await dispatcher.close();
  return { rate: n / seconds, attempts: n };
}

/** The webhook sink on a fresh store: writes in engine-sized batches, until every delivery is confirmed. */
async function ours(url: string, n: number, round: number): Promise<Round> {
  const dir = mkdtempSync(join(tmpdir(), 'ix-bench-deliver-'));
  const store = new SqliteStore(join(dir, 'state.db'));
  const sink = new WebhookSink(
    resolveSinkSettings({ url, sign: { scheme: 'standard-webhooks', secret: SECRET }, allowNetworks: ['127.0.0.1/32'], concurrency: CONCURRENCY }),
    componentContext({ flow: 'bench', name: 'bench.sink', store }),
  );
  const t0 = performance.now();
  for (let i = 0; i < n; i += BATCH) {
    await sink.write(Array.from({ length: Math.min(BATCH, n - i) }, (_, j) => createMessage({ id: `evt_${round}_${i + j}`, payload: body(i + j) })));
  }
  while (sink.counts.delivered < n) await new Promise((r) => setTimeout(r, 2));
  const seconds = (performance.now() - t0) / 1000;
  await sink.close();
  const attempts = (await store.listDeliveryAttempts({ limit: 1_000_000 })).length;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return { rate: n / seconds, attempts };
}


export const webhookDeliverBench: Bench = {
  name: 'webhook-deliver',
  summary: 'signed durable webhook deliveries/s vs a raw undici loop posting the same bodies',
  async run(options: BenchOptions): Promise<BenchResult> {
    const n = options.quick ? 12_000 : 20_000;
    const rounds = 5;
    const rss = new RssSampler().start();
    const receiver = await startReceiver();
    try {
      // warm both paths (JIT, connections, SQLite) with one full round each before the measured
      // rounds: after a shorter warm-up the first baseline round ran at two thirds of the later ones
      await baseline(receiver.url, n);
      await ours(receiver.url, n, -1);
      const before = await receiver.stats();
      const base: Round[] = [];
      const mine: Round[] = [];
      for (let r = 0; r < rounds; r++) {
        base.push(await baseline(receiver.url, n));
        mine.push(await ours(receiver.url, n, r));
      }
      const after = await receiver.stats();
      const signed = after.signed - before.signed;
      if (signed !== n * rounds) throw new Error(`the receiver saw ${signed} signed deliveries, expected ${n * rounds}`);
      if (after.received - before.received !== 2 * n * rounds) throw new Error(`the receiver saw ${after.received - before.received} requests, expected ${2 * n * rounds}`);
      const rssMB = rss.stop();
      const fmt = (xs: Round[]): string => xs.map((x) => `${x.rate.toFixed(0)}/s`).join(', ');
      console.log(`raw undici loop:  ${fmt(base)} — ${n} requests per round, concurrency ${CONCURRENCY}`);
      console.log(`webhook sink:     ${fmt(mine)} (${signed} signed, ${mine.reduce((s, x) => s + x.attempts, 0)} attempts recorded)`);
      return {
        bench: 'webhook-deliver',
        unit: 'deliveries/s',
        ours: Math.round(median(mine.map((x) => x.rate))),
        baseline: Math.round(median(base.map((x) => x.rate))),
        ratio: round(pairedRatio(mine.map((x) => x.rate), base.map((x) => x.rate))),
        rssMB,
        messages: n,
        rounds,
        concurrency: CONCURRENCY,
        attemptsRecorded: mine.reduce((s, x) => s + x.attempts, 0),
        note: 'ours = write into the durable outbox (SQLite, synchronous=FULL) + signed delivery + attempt record + completion, fresh store per round; baseline = raw undici POST loop, same bodies and concurrency; receiver in a child process; alternating rounds after a warm-up, medians (ratio = median of back-to-back round ratios)',
      };
    } finally {
      receiver.child.kill();
    }
  },
};
