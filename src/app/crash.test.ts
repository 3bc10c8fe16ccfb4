import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { startIx } from '../testing/cli.js';

const RECORDS = 100_000;
const KILLS = 5;

describe('crash test: JSONL file → engine → JSONL file, SIGKILLed mid-run', () => {
  // The default batch size and concurrency: several batches in flight settle out of order,
  // and the source's checkpoint must still cover only what every earlier batch delivered.
  it(`delivers every one of ${RECORDS} records after ${KILLS} SIGKILLs and restarts, with an empty DLQ (default batch size and concurrency: out-of-order acks)`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-crash-'));
    const lines: string[] = [];
    for (let i = 0; i < RECORDS; i++) {
      lines.push(JSON.stringify({ id: i, name: `customer-${i}`, email: `c${i}@example.com`, total: i * 1.5, note: 'x'.repeat(200) }));
    }
    writeFileSync(join(dir, 'in.jsonl'), `${lines.join('\n')}\n`);
    writeFileSync(
      join(dir, 'spec.yaml'),
      'version: 1\nadmin: { enabled: false }\nflows:\n  copy:\n    source: { file: { path: in.jsonl } }\n    sink: { file: { path: out.jsonl } }\n',
    );
    const inputBytes = statSync(join(dir, 'in.jsonl')).size;
    const outSize = (): number => {
      try {
        return statSync(join(dir, 'out.jsonl')).size;
      } catch {
        return 0;
      }
    };
    let killed = 0;
    for (let i = 0; i < KILLS; i++) {
      // Kill at a random point of progress: after 3–12 % more of the input reached the output.
      const target = outSize() + Math.floor(inputBytes * (0.03 + Math.random() * 0.09));
      const run = startIx(['run', 'spec.yaml', '--log-level', 'info'], { cwd: dir });
      while (run.child.exitCode === null && outSize() < target) await new Promise((r) => setTimeout(r, 5));
      if (run.child.exitCode === null) {
        run.child.kill('SIGKILL');
        killed++;
      }
      await run.exited;
    }
    const last = startIx(['run', 'spec.yaml', '--log-level', 'warn'], { cwd: dir });
    expect(await last.exited).toBe(0);

    const out = readFileSync(join(dir, 'out.jsonl'), 'utf8').split('\n').filter((l) => l.length > 0);
    const seen = new Set<number>();
    for (const l of out) seen.add((JSON.parse(l) as { id: number }).id);
    const missing: number[] = [];
    for (let i = 0; i < RECORDS; i++) if (!seen.has(i)) missing.push(i);
    expect(missing.slice(0, 10)).toEqual([]);
    expect(seen.size).toBe(RECORDS);
    // At-least-once: redelivery after a kill may duplicate, never lose.
    expect(out.length).toBeGreaterThanOrEqual(RECORDS);
    const db = new Database(join(dir, '.interchange/state.db'), { readonly: true });
    expect((db.prepare('SELECT COUNT(*) AS n FROM dead_letters').get() as { n: number }).n).toBe(0);
    db.close();
    // Every kill must land mid-run for the test to mean anything.
    expect(killed).toBe(KILLS);
    console.log(`crash test: ${killed} kills landed mid-run; ${out.length - RECORDS} duplicate lines redelivered`);
  }, 180_000);
});
