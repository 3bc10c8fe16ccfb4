/**
 * The benchmark harness. Every bench runs ours and its baseline in the same process run (the
 * machine drifts between runs), prints a table, and prints as its last line one JSON object:
 * {"bench","unit","ours","baseline","ratio","rssMB", …}.
 */
export interface BenchOptions {
  /** Finish in under 60 s. */
  readonly quick: boolean;
  /** Remaining command-line arguments. */
  readonly args: readonly string[];
}

export interface BenchResult {
  readonly bench: string;
  /** What `ours` and `baseline` count, e.g. "records/s". */
  readonly unit: string;
  readonly ours: number;
  readonly baseline: number;
  /** ours / baseline (or as the bench defines it; say so in `note`). */
  readonly ratio: number;
  /** Peak resident memory of the measured process(es), in MB. */
  readonly rssMB: number;
  readonly [extra: string]: unknown;
}

export interface Bench {
  readonly name: string;
  readonly summary: string;
  /** Returns one result, or several (one JSON line each, e.g. one per broker). */
  run(options: BenchOptions): Promise<BenchResult | BenchResult[]>;
}

/** Tracks the peak RSS of this process while a bench runs. */
export class RssSampler {
  private peak = 0;
  private timer: NodeJS.Timeout | undefined;
  start(intervalMs = 50): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
    return this;
  }
  sample(): void {
    const r = process.memoryUsage.rss();
    if (r > this.peak) this.peak = r;
  }
  stop(): number {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    return Math.round((this.peak / 1024 / 1024) * 10) / 10;
  }
}

/** The middle value (the upper one of an even count). */
export function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
}

/**
 * The median of each round's ours/baseline ratio: a pair that ran back to back is the least
 * disturbed by load on the machine drifting between rounds.
 */
export function pairedRatio(ours: readonly number[], baseline: readonly number[]): number {
  return median(ours.map((o, i) => o / (baseline[i] as number)));
}

export function round(n: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Prints rows as an aligned table. */
export function printTable(rows: readonly Record<string, unknown>[]): void {
  if (rows.length === 0) return;
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown): string => (typeof v === 'number' ? String(round(v)) : String(v ?? ''));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]): string => vals.map((v, i) => v.padEnd(widths[i] as number)).join('  ');
  console.log(line(cols));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c]))));
}
