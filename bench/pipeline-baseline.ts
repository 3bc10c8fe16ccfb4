/** The hand-written baseline: read a JSONL file, parse each line, stringify, write. */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { peakRssMB } from './peak-rss.js';

const [input, output] = process.argv.slice(2) as [string, string];
const started = performance.now();
const out = createWriteStream(output, { highWaterMark: 1 << 20 });
let carry = '';
let count = 0;
for await (const chunk of createReadStream(input, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
  const text = carry + (chunk as string);
  let from = 0;
  let nl = text.indexOf('\n');
  let buf = '';
  while (nl !== -1) {
    if (nl > from) {
      buf += `${JSON.stringify(JSON.parse(text.slice(from, nl)))}\n`;
      count++;
    }
    from = nl + 1;
    nl = text.indexOf('\n', from);
  }
  carry = text.slice(from);
  if (!out.write(buf)) await once(out, 'drain');
}
out.end();
await once(out, 'finish');
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ count, seconds, maxRssMB: peakRssMB() })}\n`);
