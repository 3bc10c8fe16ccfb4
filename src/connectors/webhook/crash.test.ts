import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Webhook } from 'standardwebhooks';
import { Agent, request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { startIx, type Running } from '../../testing/cli.js';

const WEBHOOKS = Number(process.env['IX_CRASH_WEBHOOKS'] ?? 10_000);
const KILLS = 3;
const SENDERS = 48;
/** How soon a killed process's inbox claims return: short, so the test spends its time on deliveries, not on waiting. */
const LEASE = '10s';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'ix-webhook-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('crash test: signed webhooks in, ix SIGKILLed and restarted, signed webhooks out', () => {
  it(`every 2xx'd webhook of ${WEBHOOKS} reaches the idempotent receiver exactly once across ${KILLS} SIGKILLs; the rest were retried`, async () => {
    const inSecret = 'whsec_' + Buffer.from('crash-test-inbound-secret-32byte').toString('base64');
    const outSecret = 'whsec_' + Buffer.from('crash-test-outbound-secret-32byt').toString('base64');
    const outVerifier = new Webhook(outSecret);

    // The idempotent sink at the far end: keeps each webhook-id once, counts repeats.
    const received = new Set<string>();
    let repeats = 0;
    let badSignatures = 0;
    const receiver: Server = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        try {
          outVerifier.verify(body, Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])));
        } catch {
          badSignatures++;
          res.writeHead(401).end();
          return;
        }
        const id = String(req.headers['webhook-id']);
        if (received.has(id)) repeats++;
        else received.add(id);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const rAddr = receiver.address();
    const receiverPort = typeof rAddr === 'object' && rAddr ? rAddr.port : 0;
    const port = await freePort();

    writeFileSync(
      join(dir, 'spec.yaml'),
      [
        'version: 1',
        'admin: { enabled: false }',
        `http: { listen: "127.0.0.1:${port}" }`,
        'secrets: { IN: env:IN_SECRET, OUT: env:OUT_SECRET }',
        'flows:',
        '  hooks:',
        '    batchSize: 200',
        '    source: { webhook: { path: /hooks/orders, verify: { scheme: standard-webhooks, secret: "${secrets.IN}" } } }',
        `    sink: { webhook: { url: "http://127.0.0.1:${receiverPort}/in", sign: { secret: "\${secrets.OUT}" }, allowNetworks: [127.0.0.1/32], timeout: 2s, concurrency: 32, schedule: [0s, 200ms, 500ms, 1s, 2s, 5s, 10s, 30s] } }`,
        '',
      ].join('\n'),
    );
    const env = { IN_SECRET: inSecret, OUT_SECRET: outSecret };

    // The sender: every webhook is retried until it gets a 2xx, as a real sender does.
    const signer = new Webhook(inSecret);
    const dispatcher = new Agent({ connections: SENDERS, connect: { timeout: 2000 } });
    const acked = new Set<string>();
    let refusedOrFailed = 0;
    let next = 0;
    let sending = true;
    const sendOne = async (id: string): Promise<void> => {
      const body = JSON.stringify({ type: 'order.created', id, total: 42 });
      for (;;) {
        const now = new Date();
        try {
          const r = await request(`http://127.0.0.1:${port}/hooks/orders`, {
            method: 'POST',
            body,
            dispatcher,
            headersTimeout: 10_000,
            bodyTimeout: 10_000,
            headers: {
              'content-type': 'application/json',
              'webhook-id': id,
              'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
              'webhook-signature': signer.sign(id, now, body),
            },
          });
          await r.body.dump();
          if (r.statusCode >= 200 && r.statusCode < 300) {
            acked.add(id);
            return;
          }
        } catch {
          // connection refused or reset: the engine is down
        }
        refusedOrFailed++;
        await new Promise((res) => setTimeout(res, 25 + Math.random() * 75));
      }
    };
    let killed = 0;
    const senders = Array.from({ length: SENDERS }, async () => {
      while (next < WEBHOOKS) {
        // Paced by the kills: the k-th share of the webhooks waits until k kills landed, so every
        // kill lands mid-stream however fast the engine takes them in.
        if (killed < KILLS && next >= Math.floor((WEBHOOKS * (killed + 1)) / (KILLS + 1))) {
          await new Promise((res) => setTimeout(res, 20));
          continue;
        }
        const id = `evt_${next++}`;
        await sendOne(id);
      }
    });
    const allSent = Promise.all(senders).then(() => {
      sending = false;
    });

    const progress = setInterval(() => {
      if (process.env['IX_CRASH_DEBUG']) console.log(`sent ${next} acked ${acked.size} received ${received.size} repeats ${repeats} retries ${refusedOrFailed}`);
    }, 2000);
    let run: Running | undefined;
    for (let k = 0; k < KILLS; k++) {
      run = startIx(['run', 'spec.yaml', '--log-level', 'info', '--lease', LEASE], { cwd: dir, env });
      await run.waitFor(/interchange started/, 60_000);
      await new Promise((r) => setTimeout(r, 1500 + Math.random() * 2000));
      if (run.child.exitCode === null && sending) {
        run.child.kill('SIGKILL');
        killed++;
      }
      // Not killed (it exited by itself, or sending was over): stop it rather than wait forever.
      if (run.child.exitCode === null) run.child.kill('SIGTERM');
      await run.exited;
      if (process.env['IX_CRASH_DEBUG']) console.log(`run ${k}: ${run.stderr().slice(-600)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    run = startIx(['run', 'spec.yaml', '--log-level', 'warn', '--lease', LEASE], { cwd: dir, env });
    await allSent;
    // Inbox and outbox leases held by killed processes expire (10 s and the sink's timeout + 10 s), then all is delivered.
    const deadline = Date.now() + 150_000;
    while (received.size < WEBHOOKS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    clearInterval(progress);
    run.child.kill('SIGTERM');
    if (process.env['IX_CRASH_DEBUG']) console.log(run.stderr().slice(-3000));
    expect(await run.exited).toBe(0);
    await dispatcher.close();
    await new Promise<void>((r) => receiver.close(() => r()));

    expect(acked.size).toBe(WEBHOOKS);
    const missing = [...acked].filter((id) => !received.has(id));
    expect(missing.slice(0, 10)).toEqual([]);
    expect(received.size).toBe(WEBHOOKS);
    expect(badSignatures).toBe(0);
    // Requests that got no 2xx during the kills were retried by the sender.
    expect(refusedOrFailed).toBeGreaterThan(0);
    expect(killed).toBe(KILLS);
    const db = new Database(join(dir, '.interchange/state.db'), { readonly: true });
    expect((db.prepare('SELECT COUNT(*) AS n FROM dead_letters').get() as { n: number }).n).toBe(0);
    db.close();
    console.log(
      `webhook crash test: ${killed} SIGKILLs mid-run; ${refusedOrFailed} sender retries; ${WEBHOOKS} distinct deliveries; ${repeats} repeated deliveries absorbed by the idempotent receiver`,
    );
  }, 420_000);
});
