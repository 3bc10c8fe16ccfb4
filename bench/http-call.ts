/**
 * `http-call`: a flow calling a local endpoint once per message (generate → http step → a sink
 * that counts) with retry, circuit breaker and a store-backed rate limit configured but never
 * triggered, next to a raw undici request loop with the same concurrency, the same bodies and
 * the same JSON parsing, in the same run. The server runs in a child process so it does not
 * share the measured event loop. Both sides run as plain Node on an esbuild bundle
 * (http-call-sides.ts), as `ix` runs its bundle: neither pays for the TypeScript loader.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { build } from 'esbuild';
import { type Bench, type BenchOptions, type BenchResult, median, pairedRatio } from './harness.js';
import type { Round, SidesResult } from './http-call-sides.js';

/** The sides script bundled, dependencies external (as pipeline.ts bundles its sides). */
async function bundleSides(): Promise<string> {
  const outfile = join(import.meta.dirname, '..', 'dist', 'bench', 'http-call-sides.mjs');
  await build({ entryPoints: [join(import.meta.dirname, 'http-call-sides.ts')], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning' });
  return outfile;
}

export const httpCallBench: Bench = {
  name: 'http-call',
  summary: 'a flow calling a local endpoint per message (retry, breaker, rate limit configured) vs a raw undici loop',
  async run(options: BenchOptions): Promise<BenchResult> {
    const n = options.quick ? 20_000 : 60_000;
    // --no-policies: the same flow without rate limit, retry table and breaker (to see their cost)
    const policies = !options.args.includes('--no-policies');
    const rounds = options.quick ? 3 : 5;
    const script = await bundleSides();
    const out = execFileSync(process.execPath, [script, String(n), String(rounds), policies ? 'policies' : 'no-policies'], { encoding: 'utf8', maxBuffer: 1 << 20, stdio: ['ignore', 'pipe', 'inherit'] });
    const { base, mine, rssMB, concurrency } = JSON.parse(out.trim().split('\n').pop() as string) as SidesResult;
    const baseRate = median(base.map((x) => x.rate));
    const oursRate = median(mine.map((x) => x.rate));
    const ratio = pairedRatio(mine.map((x) => x.rate), base.map((x) => x.rate));
    const fmt = (xs: Round[]): string => xs.map((x) => `${x.rate.toFixed(0)}/s (${x.cpuUs.toFixed(0)} µs CPU)`).join(', ');
    console.log(`raw undici loop:     ${fmt(base)} — ${n} calls per round, concurrency ${concurrency}`);
    console.log(`flow with http step: ${fmt(mine)}`);
    return {
      bench: 'http-call',
      unit: 'calls/s',
      ours: Math.round(oursRate),
      baseline: Math.round(baseRate),
      ratio: Math.round(ratio * 1000) / 1000,
      rssMB,
      messages: n,
      rounds,
      concurrency,
      policies,
      cpuUsPerCall: Math.round(median(mine.map((x) => x.cpuUs))),
      baselineCpuUsPerCall: Math.round(median(base.map((x) => x.cpuUs))),
      note: 'both sides run as plain Node on an esbuild bundle (bench/http-call-sides.ts); ours = generate → http step (auth none, store-backed rate limit, retry, breaker, bulkhead, errors table, metrics) → sink, SQLite store; baseline = raw undici POST loop with JSON parse; timed from the 500th completed call to the last; ours/baseline = medians of rounds, ratio = median of back-to-back round ratios; cpuUsPerCall = CPU of this process per call; server in a child process',
    };
  },
};
