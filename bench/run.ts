/**
 * `npm run bench -- NAME [--quick]`: runs one benchmark (ours next to its baseline, in the
 * same run) and prints a table, then one JSON line per result, the last line last.
 */
import { printTable, type Bench, type BenchResult } from './harness.js';
import { benches } from './index.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick');
  const rest = argv.filter((a) => a !== '--quick');
  const name = rest[0];
  const bench: Bench | undefined = benches.find((b) => b.name === name);
  if (!bench) {
    console.error(`usage: npm run bench -- NAME [--quick]\n\nbenchmarks:\n${benches.map((b) => `  ${b.name.padEnd(18)} ${b.summary}`).join('\n')}`);
    process.exit(name === undefined ? 0 : 2);
  }
  const out = await bench.run({ quick, args: rest.slice(1) });
  const results: BenchResult[] = Array.isArray(out) ? out : [out];
  console.log('');
  printTable(results.map((r) => ({ ...r })));
  console.log('');
  for (const r of results) console.log(JSON.stringify(r));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
