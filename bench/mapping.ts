import jsonata from 'jsonata';
import { type Bench, type BenchResult, median, round, RssSampler } from './harness.js';
import { benchRecord, handWritten, jsonataBindings, jsonataSource, oursMapping } from './mapping-cases.js';

/** Records per second of `fn` over `n` records drawn from `pool`. */
function measure(pool: readonly Record<string, unknown>[], n: number, fn: (r: Record<string, unknown>) => unknown): number {
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const out = fn(pool[i % pool.length] as Record<string, unknown>) as Record<string, unknown>;
    if (out['line_count'] === -1) sink++;
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  if (sink) console.log(sink);
  return n / secs;
}

export const mappingBench: Bench = {
  name: 'mapping',
  summary: '12-field mapping: ours (compiled spec mapping) vs hand-written JS vs one JSONata expression.',
  async run({ quick }): Promise<BenchResult> {
    const n = quick ? 300_000 : 1_000_000;
    const nJsonata = quick ? 15_000 : 60_000;
    const rounds = quick ? 3 : 5;
    const pool = Array.from({ length: 10_000 }, (_, i) => benchRecord(i));
    const ours = oursMapping();
    const expr = jsonata(jsonataSource);
    const bindings = jsonataBindings;

    // Same answers first: a benchmark of different work would mean nothing.
    for (let i = 0; i < 200; i++) {
      const r = pool[i] as Record<string, unknown>;
      const a = JSON.stringify(ours(r));
      const b = JSON.stringify(handWritten(r));
      const c = JSON.stringify(await expr.evaluate(r, bindings));
      if (a !== b || a !== c) throw new Error(`the three mappings disagree on record ${i}:\nours ${a}\nhand ${b}\njsonata ${c}`);
    }

    const rss = new RssSampler().start();
    const oursRates: number[] = [];
    const handRates: number[] = [];
    measure(pool, 100_000, (r) => ours(r));
    measure(pool, 100_000, handWritten);
    for (let k = 0; k < rounds; k++) {
      oursRates.push(measure(pool, n, (r) => ours(r)));
      handRates.push(measure(pool, n, handWritten));
    }
    const js: number[] = [];
    for (let k = 0; k < 2; k++) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < nJsonata; i++) await expr.evaluate(pool[i % pool.length], bindings);
      js.push(nJsonata / (Number(process.hrtime.bigint() - start) / 1e9));
    }
    const rssMB = rss.stop();
    const o = median(oursRates);
    const h = median(handRates);
    const j = Math.max(...js);
    console.log(`mapping: ${n} records per round, ${rounds} rounds alternating (median); JSONata ${nJsonata} records, best of 2`);
    console.log(`  ours         ${Math.round(o).toLocaleString('en')} records/s   rounds: ${oursRates.map((x) => Math.round(x)).join(', ')}`);
    console.log(`  hand-written ${Math.round(h).toLocaleString('en')} records/s   rounds: ${handRates.map((x) => Math.round(x)).join(', ')}`);
    console.log(`  JSONata      ${Math.round(j).toLocaleString('en')} records/s`);
    return {
      bench: 'mapping',
      unit: 'records/s',
      ours: Math.round(o),
      baseline: Math.round(h),
      ratio: round(o / h),
      rssMB,
      jsonata: Math.round(j),
      jsonataRatio: round(o / j, 1),
      records: n,
      note: 'baseline = hand-written JS; ratio = ours / hand-written; jsonataRatio = ours / JSONata',
    };
  },
};
