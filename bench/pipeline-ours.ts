/**
 * Ours: the same file through the engine (file source → file sink), as `ix run` does it. The
 * time runs from before start-up (spec load, store open and migrations, build) to the last
 * record settled, as the baseline's runs from before it opens its files: start-up counts
 * against us.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startApp } from '../src/app/app.js';
import { silentLogger } from '../src/core/logger.js';
import { peakRssMB } from './peak-rss.js';

const [input, output, store, sync] = process.argv.slice(2) as [string, string, string, string];
const spec = join(dirname(output), 'pipeline-spec.yaml');
writeFileSync(
  spec,
  `version: 1\nadmin: { enabled: false }\nflows:\n  pipeline:\n    source: { file: { path: ${JSON.stringify(input)} } }\n    sink: { file: { path: ${JSON.stringify(output)}, sync: ${sync} } }\n`,
);
// Before start-up, on purpose: see the comment at the top.
const started = performance.now();
const app = await startApp({ specFile: spec, store: `sqlite:${store}`, logger: silentLogger });
await app.done();
const seconds = (performance.now() - started) / 1000;
const count = app.engine.stats()['pipeline']?.out ?? 0;
await app.stop();
process.stdout.write(`${JSON.stringify({ count, seconds, maxRssMB: peakRssMB() })}\n`);
process.exit(0);
