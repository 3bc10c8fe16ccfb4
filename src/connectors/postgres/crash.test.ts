import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceAvailable } from '../../testing/services.js';
import { uniqueName } from '../../testing/sql-suite.js';

const PG_URL = process.env['IX_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const IX = resolve(import.meta.dirname, '../../../bin/ix.js');
const N = 20_000;

/**
 * The engine is SIGKILLed mid-stream, three times, and restarted: two flows write into
 * PostgreSQL (synthetic records → insert idempotent by message id; a table polled by a cursor
 * with ties → upsert). At the end every row is there once.
 */
describe.skipIf(!serviceAvailable('postgres'))('crash: ix run SIGKILLed mid-stream into PostgreSQL', () => {
  const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'ix-pg-crash-'));
  const src = uniqueName('ix_crash_src');
  const gen = uniqueName('ix_crash_gen');
  const poll = uniqueName('ix_crash_poll');
  const spec = join(dir, 'spec.yaml');

  beforeAll(async () => {
    await admin.query(`CREATE TABLE "${src}" (id integer PRIMARY KEY, updated_at timestamptz NOT NULL, name text)`);
    // 50 rows share each timestamp: batch boundaries fall inside ties
    await admin.query(`INSERT INTO "${src}" SELECT i, timestamptz '2026-01-01' + (i / 50) * interval '1 second', 'row ' || i FROM generate_series(1, ${N}) i`);
    await admin.query(`CREATE TABLE "${gen}" (seq integer NOT NULL, message_id text NOT NULL UNIQUE)`);
    await admin.query(`CREATE TABLE "${poll}" (id integer PRIMARY KEY, name text, message_id text NOT NULL)`);
    writeFileSync(
      spec,
      [
        'version: 1',
        'name: pg-crash',
        'store: sqlite:./state.db',
        'admin: { enabled: false }',
        'flows:',
        '  gen:',
        '    batchSize: 200',
        `    source: { generate: { count: ${N}, rate: 5000/s } }`,
        `    sink: { postgres: { url: "${PG_URL}", table: ${gen}, idColumn: message_id, columns: { seq: seq, message_id: $id } } }`,
        '  poll:',
        '    batchSize: 200',
        `    source: { postgres: { url: "${PG_URL}", table: ${src}, cursor: updated_at, key: id, batchSize: 150, stopWhenCaughtUp: true } }`,
        `    sink: { postgres: { url: "${PG_URL}", table: ${poll}, mode: upsert, key: id, columns: { id: id, name: name, message_id: $id } } }`,
        '',
      ].join('\n'),
    );
  });
  afterAll(async () => {
    for (const t of [src, gen, poll]) await admin.query(`DROP TABLE IF EXISTS "${t}"`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  });

  const count = async (t: string): Promise<number> => Number((await admin.query(`SELECT count(*) AS n FROM "${t}"`)).rows[0].n);
  const run = (): { child: ChildProcess; exit: Promise<number | null>; output: () => string } => {
    let out = '';
    const child = spawn(process.execPath, [IX, 'run', spec, '--no-admin', '--log-level', 'warn'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exit = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    return { child, exit, output: () => out };
  };

  it('every row present, none doubled, after three SIGKILLs', async () => {
    const kills: { g: number; p: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const before = (await count(gen)) + (await count(poll));
      const r = run();
      const deadline = Date.now() + 30_000;
      if (i === 0) {
        // the polling flow reads tens of thousands of rows a second, so a kill timed by the clock
        // can land after it finished: the first kill waits for a row count inside the stream
        const target = 1000 + Math.floor(Math.random() * (N / 2));
        while ((await count(poll)) < target && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
      } else {
        // wait until this run is writing, then kill it at a random moment
        while ((await count(gen)) + (await count(poll)) <= before && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
        await new Promise((res) => setTimeout(res, 100 + Math.floor(Math.random() * 600)));
      }
      r.child.kill('SIGKILL');
      await r.exit;
      const g = await count(gen);
      const p = await count(poll);
      kills.push({ g, p });
      process.stderr.write(`kill ${i + 1}: gen ${g}/${N}, poll ${p}/${N}\n`);
    }
    const mid = (v: number): boolean => v > 0 && v < N;
    expect(kills.some((k) => mid(k.g)), `a kill landed mid-stream of the generate flow: ${JSON.stringify(kills)}`).toBe(true);
    expect(kills.some((k) => mid(k.p)), `a kill landed mid-stream of the polling flow: ${JSON.stringify(kills)}`).toBe(true);

    const last = run();
    const code = await last.exit;
    expect(code, last.output()).toBe(0);

    const g = (await admin.query(`SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d, min(seq) AS lo, max(seq) AS hi FROM "${gen}"`)).rows[0];
    expect(g).toEqual({ n: N, d: N, lo: 1, hi: N });
    const p = (await admin.query(`SELECT count(*)::int AS n FROM "${poll}" t JOIN "${src}" s USING (id) WHERE t.name = s.name`)).rows[0];
    expect(p.n).toBe(N);
    expect(await count(poll)).toBe(N);
  }, 180_000);
});
