#!/usr/bin/env node
// Bundles the CLI into dist/ix.mjs and the library entry (src/index.ts) into dist/index.js,
// dependencies external: `ix` starts fast, and plain Node can import the package.
import { build } from 'esbuild';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

async function bundle(entry, outfile) {
  // Written to temporary names and renamed into place, so a concurrent `ix` (or import) never
  // loads a half-written bundle.
  const result = await build({
    entryPoints: [join(root, entry)],
    outfile: join(root, outfile),
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

export async function buildCli() {
  await bundle('src/cli/main.ts', 'dist/ix.mjs');
}

/** The package's import entry (`exports["."].import`); its types stay src/index.ts. */
export async function buildLibrary() {
  await bundle('src/index.ts', 'dist/index.js');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await Promise.all([buildCli(), buildLibrary()]);
