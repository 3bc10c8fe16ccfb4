import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { type Bench, type BenchResult, median, round } from './harness.js';

interface Run {
  count: number;
  seconds: number;
  maxRssMB: number;
}

/** A JSONL file of `n` records of about 300 bytes, made once per size. */
export function pipelineInput(n: number): string {
  const path = join(tmpdir(), `ix-bench-pipeline-${n}.jsonl`);
  if (existsSync(path) && statSync(path).size > n * 250) return path;
  const chunk: string[] = [];
  writeFileSync(path, '');
  for (let i = 0; i < n; i++) {
    chunk.push(
      JSON.stringify({
        id: i,
        external_id: `ord_${(i * 7919).toString(36)}`,
        customer: { name: `Customer ${i}`, email: `customer${i}@example.com`, city: ['Berlin', 'Lagos', 'Lima', 'Osaka'][i % 4] },
        total: Math.round(i * 13.7) / 100,
        currency: 'EUR',
        status: i % 5 === 0 ? 'refunded' : 'paid',
        items: [{ sku: `sku-${i % 100}`, qty: 1 + (i % 3) }],
        updated_at: new Date(1_700_000_000_000 + i * 1000).toISOString(),
        note: 'n'.repeat(40),
      }),
    );
    if (chunk.length === 10_000) {
      writeFileSync(path, `${chunk.join('\n')}\n`, { flag: 'a' });
      chunk.length = 0;
    }
  }
  if (chunk.length) writeFileSync(path, `${chunk.join('\n')}\n`, { flag: 'a' });
  return path;
}

/**
 * Both sides run as plain Node on an esbuild bundle of their script (as `ix` runs dist/ix.mjs),
 * dependencies external: neither pays for transpiling TypeScript at start-up.
 */
async function bundle(script: string): Promise<string> {
  const outfile = join(import.meta.dirname, '..', 'dist', 'bench', script.replace(/\.ts$/, '.mjs'));
  await build({ entryPoints: [join(import.meta.dirname, script)], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning' });
  return outfile;
}

/** Streamed, so this process stays small: a child's memory is measured on its own (peak-rss.ts). */
async function digest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function run(script: string, args: string[]): Run {
  const out = execFileSync(process.execPath, [script, ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  const last = out.trim().split('\n').pop() as string;
  return JSON.parse(last) as Run;
}

export const pipelineBench: Bench = {
  name: 'pipeline',
  summary: 'JSONL file → engine → JSONL file, next to a hand-written Node loop.',
  async run({ quick }): Promise<BenchResult> {
    const n = quick ? 200_000 : 1_000_000;
    const rounds = quick ? 2 : 3;
    const input = pipelineInput(n);
    const bytes = statSync(input).size;
    console.log(`pipeline: ${n} records, ${round(bytes / n, 0)} bytes each, ${rounds} rounds each, alternating`);
    const oursScript = await bundle('pipeline-ours.ts');
    const baseScript = await bundle('pipeline-baseline.ts');
    const ours: Run[] = [];
    const base: Run[] = [];
    for (let r = 0; r < rounds; r++) {
      const dir = mkdtempSync(join(tmpdir(), 'ix-bench-'));
      base.push(run(baseScript, [input, join(dir, 'base.jsonl')]));
      ours.push(run(oursScript, [input, join(dir, 'ours.jsonl'), join(dir, 'state.db'), 'batch']));
      const o = ours[ours.length - 1] as Run;
      const b = base[base.length - 1] as Run;
      if (o.count !== n || b.count !== n) throw new Error(`count mismatch: ours ${o.count}, baseline ${b.count}, expected ${n}`);
      // The same bytes out, in the same order (untimed).
      if ((await digest(join(dir, 'ours.jsonl'))) !== (await digest(join(dir, 'base.jsonl')))) throw new Error('output mismatch: ours.jsonl and base.jsonl differ');
      rmSync(dir, { recursive: true, force: true });
      console.log(`  round ${r + 1}: ours ${round(n / o.seconds, 0)} rec/s (${round(o.maxRssMB, 0)} MB), baseline ${round(n / b.seconds, 0)} rec/s (${round(b.maxRssMB, 0)} MB)`);
    }
    const oursRate = median(ours.map((o) => n / o.seconds));
    const baseRate = median(base.map((b) => n / b.seconds));
    return {
      bench: 'pipeline',
      unit: 'records/s',
      ours: round(oursRate, 0),
      baseline: round(baseRate, 0),
      ratio: round(oursRate / baseRate),
      rssMB: round(Math.max(...ours.map((o) => o.maxRssMB)), 1),
      baselineRssMB: round(Math.max(...base.map((b) => b.maxRssMB)), 1),
      records: n,
      // What the default `sqlite:` store really does (src/store/sqlite/sqlite-store.ts): WAL with
      // PRAGMA synchronous=NORMAL; commits that take a message over fdatasync the WAL themselves
      // (group commit); checkpoints skip it, so a power loss may re-read, never lose.
      durability:
        'ours: file sink fsync before each ack (group commit); SQLite store WAL, synchronous=NORMAL, checkpoints not fsynced (durable with the next WAL fsync; a power loss re-reads, never loses); baseline: no fsync at all (its bytes reach the OS only)',
      outputChecked: 'ours and baseline wrote identical bytes (sha256) in every round',
    };
  },
};
