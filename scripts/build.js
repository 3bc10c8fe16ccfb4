#!/usr/bin/env node
// Bundles the CLI into dist/ix.mjs (dependencies stay external), so `ix` starts fast.
import { build } from 'esbuild';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export async function buildCli() {
  // Written to temporary names and renamed into place, so a concurrent `ix` never loads a
  // half-written bundle.
  const result = await build({
    entryPoints: [join(root, 'src/cli/main.ts')],
    outfile: join(root, 'dist/ix.mjs'),
    write: false,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    logLevel: 'warning',
  });
  mkdirSync(join(root, 'dist'), { recursive: true });
  const tag = `.${process.pid}.tmp`;
  for (const f of result.outputFiles) writeFileSync(f.path + tag, f.contents);
  // The map first, then the bundle that names it.
  for (const f of [...result.outputFiles].sort((a) => (a.path.endsWith('.map') ? -1 : 1))) renameSync(f.path + tag, f.path);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildCli();
