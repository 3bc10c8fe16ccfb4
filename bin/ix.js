#!/usr/bin/env node
// The `ix` command. Runs the bundled CLI (dist/ix.mjs, built by `npm ci` / `npm run build`);
// in a source checkout whose src/ changed since the bundle was built, it rebuilds it first.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// A SIGTERM or SIGINT that arrives while the CLI loads (importing the bundle takes a while on a
// busy machine) is held, not fatal: `ix run` then starts and shuts down cleanly with exit 0.
// Other commands end as the signal would have ended them.
const heldSignals = [];
const hold = (signal) => heldSignals.push(signal);
process.on('SIGTERM', hold);
process.on('SIGINT', hold);

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist/ix.mjs');
const src = join(root, 'src');

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

if (existsSync(src) && (!existsSync(bundle) || newest(src) > statSync(bundle).mtimeMs)) {
  const { buildCli } = await import(pathToFileURL(join(root, 'scripts/build.js')).href);
  // esbuild's service does not hold the event loop open by itself: keep it alive meanwhile.
  const keepAlive = setInterval(() => undefined, 1000);
  await buildCli();
  clearInterval(keepAlive);
}
process.setSourceMapsEnabled?.(true);
const { main } = await import(pathToFileURL(bundle).href);
process.off('SIGTERM', hold);
process.off('SIGINT', hold);
await main(process.argv, heldSignals);
