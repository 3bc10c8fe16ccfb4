import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../observability/logger.js';
import { startIx } from '../testing/cli.js';
import { startApp } from './app.js';

const root = join(import.meta.dirname, '../..');

describe('quickstart (end to end through `ix run`)', () => {
  it('copies the example orders to the output file and stdout, and exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-quickstart-'));
    cpSync(join(root, 'examples'), join(dir, 'examples'), { recursive: true });
    const run = startIx(['run', 'examples/quickstart.yaml'], { cwd: dir });
    expect(await run.exited).toBe(0);
    const input = readFileSync(join(dir, 'examples/data/orders.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
    const output = readFileSync(join(dir, 'out/quickstart-orders.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(output).toEqual(input);
    expect(run.stdout().trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual(input);
    expect(run.stderr()).toContain('flow orders: in 10, delivered 10, dead-lettered 0, filtered 0');
  }, 60_000);
});

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  return {
    lines,
    stream: new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        cb();
      },
    }),
  };
}

describe('http-server ingest, admin listener and secrets', () => {
  it('persists before 202, de-duplicates by idempotency key, answers 400/413/415, serves health and metrics, and never logs a secret', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-ingest-'));
    writeFileSync(
      join(dir, 'spec.yaml'),
      [
        'version: 1',
        'secrets: { TOKEN: env:IX_TEST_INGEST_TOKEN }',
        'http: { listen: "127.0.0.1:0" }',
        'admin: { listen: "127.0.0.1:0" }',
        'flows:',
        '  ingest:',
        '    description: "token ${secrets.TOKEN}"',
        '    source: { http-server: { path: /ingest, bodyLimit: 1KiB } }',
        '    sink: { file: { path: out.jsonl } }',
      ].join('\n'),
    );
    const log = capture();
    const app = await startApp({
      specFile: join(dir, 'spec.yaml'),
      env: { IX_TEST_INGEST_TOKEN: 's3cr3t-value-42' },
      logger: createLogger({ secrets: ['s3cr3t-value-42'], destination: log.stream, level: 'debug' }),
    });
    app.logger.info({ leaked: 'token is s3cr3t-value-42' }, 'a careless log line');
    try {
      const base = `http://${app.httpAddress}`;
      const post = (body: string, headers: Record<string, string> = {}): Promise<Response> =>
        fetch(`${base}/ingest`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

      const r1 = await post('{"order":1}', { 'idempotency-key': 'evt-1' });
      expect(r1.status).toBe(202);
      expect(await r1.json()).toEqual({ accepted: 1, duplicates: 0, id: 'evt-1' });
      // A sender's retry of an id already processed is answered 2xx and not processed again.
      for (let i = 0; i < 100 && (app.engine.stats()['ingest']?.out ?? 0) < 1; i++) await new Promise((r) => setTimeout(r, 20));
      expect(app.engine.stats()['ingest']?.out).toBe(1);
      const r2 = await post('{"order":1}', { 'idempotency-key': 'evt-1' });
      expect(r2.status).toBe(202);
      expect(await r2.json()).toEqual({ accepted: 0, duplicates: 1, id: 'evt-1' });
      const r3 = await post('[{"order":2},{"order":3}]');
      expect(((await r3.json()) as { accepted: number }).accepted).toBe(2);

      const bad = await post('{"order":');
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { message: string }).message).toMatch(/^malformed JSON: /);
      expect((await post(JSON.stringify({ pad: 'x'.repeat(2000) }))).status).toBe(413);
      const text = await fetch(`${base}/ingest`, { method: 'POST', body: 'hi', headers: { 'content-type': 'text/plain' } });
      expect(text.status).toBe(415);
      expect((await fetch(`${base}/nope`, { method: 'POST' })).status).toBe(404);

      const admin = `http://${app.adminAddress}`;
      expect((await fetch(`${admin}/health/live`)).status).toBe(200);
      expect((await fetch(`${admin}/health/ready`)).status).toBe(200);
      // Wait for the inbox to drain into the sink.
      for (let i = 0; i < 100 && (app.engine.stats()['ingest']?.out ?? 0) < 3; i++) await new Promise((r) => setTimeout(r, 20));
      const metrics = await (await fetch(`${admin}/metrics`)).text();
      expect(metrics).toContain('ix_flow_messages_in_total{flow="ingest"} 3');
      expect(metrics).toContain('ix_flow_messages_out_total{flow="ingest"} 3');
      expect(metrics).toContain('ix_flow_messages_dead_lettered_total');
      expect(metrics).toContain('ix_flow_messages_filtered_total');
      const out = readFileSync(join(dir, 'out.jsonl'), 'utf8').trim().split('\n');
      expect(out.map((l) => JSON.parse(l) as unknown)).toEqual([{ order: 1 }, { order: 2 }, { order: 3 }]);
    } finally {
      await app.stop();
    }
    const all = log.lines.join('\n');
    expect(all).toContain('a careless log line');
    expect(all).toContain('[REDACTED]');
    expect(all).not.toContain('s3cr3t-value-42');
  });
});
