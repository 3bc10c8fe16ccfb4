/**
 * `webhook-deliver`: signed, durable webhook deliveries per second to a local receiver (the
 * webhook sink: durable outbox in SQLite with fsync, Standard Webhooks signing, every attempt
 * recorded) next to a raw undici loop posting the same bodies with the same concurrency.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { createMessage } from '../src/core/message.js';
import { resolveSinkSettings, WebhookSink } from '../src/connectors/webhook/sink.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { componentContext } from '../src/testing/contexts.js';
import { RssSampler, type Bench, type BenchOptions, type BenchResult } from './harness.js';

const SECRET = 'whsec_' + Buffer.from('bench-secret-for-webhook-deliver').toString('base64');
const CONCURRENCY = 16;
const BATCH = 500;

function body(i: number): unknown {
  return { id: `evt_${i}`, type: 'order.created', data: { order: i, total: 42.5, currency: 'EUR', customer: 'c-123', lines: [{ sku: 'A-1', qty: 2 }] } };
}

export const webhookDeliverBench: Bench = {
  name: 'webhook-deliver',
  summary: 'signed durable webhook deliveries/s vs a raw undici loop posting the same bodies',
  async run(options: BenchOptions): Promise<BenchResult> {
    const n = options.quick ? 5000 : 30_000;
    const rss = new RssSampler().start();
    let received = 0;
    let signed = 0;
    const server = createServer((req, res) => {
      if (req.headers['webhook-signature']) signed++;
      req.resume();
      req.on('end', () => {
        received++;
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const a = server.address();
    const url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/in`;

    // baseline: a raw undici loop, same bodies, same concurrency, no signing, no store
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
        }
      }),
    );
    const baseSeconds = (performance.now() - t0) / 1000;
    await dispatcher.close();
    const baseRate = n / baseSeconds;

    // ours: the webhook sink, writes in engine-sized batches, until every delivery is confirmed
    received = 0;
    const dir = mkdtempSync(join(tmpdir(), 'ix-bench-deliver-'));
    const store = new SqliteStore(join(dir, 'state.db'));
    const ctx = componentContext({ flow: 'bench', name: 'bench.sink', store });
    const sink = new WebhookSink(
      resolveSinkSettings({ url, sign: { scheme: 'standard-webhooks', secret: SECRET }, allowNetworks: ['127.0.0.1/32'], concurrency: CONCURRENCY }),
      ctx,
    );
    const t1 = performance.now();
    for (let i = 0; i < n; i += BATCH) {
      await sink.write(Array.from({ length: Math.min(BATCH, n - i) }, (_, j) => createMessage({ id: `evt_${i + j}`, payload: body(i + j) })));
    }
    while (sink.counts.delivered < n) await new Promise((r) => setTimeout(r, 2));
    if (received < n) throw new Error(`the receiver saw ${received} deliveries, expected ${n}`);
    const oursSeconds = (performance.now() - t1) / 1000;
    const oursRate = n / oursSeconds;
    await sink.close();
    const attempts = await store.listDeliveryAttempts({ limit: 1_000_000 });
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    await new Promise<void>((r) => server.close(() => r()));
    const rssMB = rss.stop();

    console.log(`raw undici loop:   ${baseRate.toFixed(0)} req/s (${n} in ${baseSeconds.toFixed(2)} s)`);
    console.log(`webhook sink:      ${oursRate.toFixed(0)} deliveries/s (${n} in ${oursSeconds.toFixed(2)} s; ${signed} signed, ${attempts.length} attempts recorded)`);
    return {
      bench: 'webhook-deliver',
      unit: 'deliveries/s',
      ours: Math.round(oursRate),
      baseline: Math.round(baseRate),
      ratio: Math.round((oursRate / baseRate) * 1000) / 1000,
      rssMB,
      messages: n,
      concurrency: CONCURRENCY,
      attemptsRecorded: attempts.length,
      note: 'ours = write into the durable outbox (SQLite, synchronous=FULL) + signed delivery + attempt record + completion; baseline = raw undici POST loop, same bodies and concurrency',
    };
  },
};
