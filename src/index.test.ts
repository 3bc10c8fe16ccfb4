import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

// A user's project: `interchange` and TypeBox installed in its node_modules, a script that plain
// Node runs (no tsx, no TypeScript), importing the package by name through its `exports`.
const script = `
import { Type } from '@sinclair/typebox';
import { createRegistry, defineSink, startApp } from 'interchange';

const got = [];
const registry = createRegistry();
registry.registerSink(
  defineSink({
    kind: 'collect',
    summary: 'Keeps what it is given, tagged.',
    config: Type.Object({ tag: Type.String() }, { additionalProperties: false }),
    create: (config) => ({
      write: async (batch) => {
        for (const m of batch) got.push({ tag: config.tag, seq: m.payload.seq, kind: m.payload.kind });
      },
    }),
  }),
);
const app = await startApp({ specFile: 'spec.yaml', registry, store: 'sqlite::memory:', admin: false, logLevel: 'error' });
await app.done();
await app.stop();
process.stdout.write('RESULT ' + JSON.stringify({ got, stats: app.engine.stats() }) + '\\n');
`;

describe('embedding: the built package in plain Node', () => {
  beforeAll(() => {
    execFileSync(process.execPath, [join(root, 'scripts/build.js')], { cwd: root, stdio: 'pipe' });
  }, 120_000);

  it('imports the packed dist/index.js by package name, registers a custom sink and runs a spec through it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-embed-'));
    // the package as `npm pack` makes it (its `files` list), unpacked where npm would put it
    const packed = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
    ) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]?.files.map((f) => f.path) ?? [];
    expect(files).toEqual(expect.arrayContaining(['dist/index.js', 'dist/ix.mjs', 'bin/ix.js', 'src/index.ts', 'README.md']));
    expect(files.filter((f) => f.endsWith('.test.ts'))).toEqual([]);
    const pkg = join(dir, 'node_modules/interchange');
    mkdirSync(pkg, { recursive: true });
    execFileSync('tar', ['-xzf', join(dir, packed[0]?.filename as string), '-C', pkg, '--strip-components=1']);
    symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules'), 'dir');
    mkdirSync(join(dir, 'node_modules/@sinclair'), { recursive: true });
    symlinkSync(join(root, 'node_modules/@sinclair/typebox'), join(dir, 'node_modules/@sinclair/typebox'), 'dir');
    writeFileSync(join(dir, 'package.json'), '{ "type": "module", "private": true }\n');
    writeFileSync(
      join(dir, 'spec.yaml'),
      'version: 1\nflows:\n  numbers:\n    source: { generate: { count: 3, payload: { kind: demo } } }\n    sink: { collect: { tag: mine } }\n',
    );
    writeFileSync(join(dir, 'main.js'), script);
    const r = spawnSync(process.execPath, ['main.js'], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT ')) as string;
    const result = JSON.parse(line.slice('RESULT '.length)) as { got: unknown[]; stats: Record<string, { out: number }> };
    expect(result.got).toEqual([1, 2, 3].map((seq) => ({ tag: 'mine', seq, kind: 'demo' })));
    expect(result.stats['numbers']?.out).toBe(3);
    // the packed CLI runs without rebuilding (no esbuild step on a user's machine)
    writeFileSync(join(dir, 'plain.yaml'), 'version: 1\nflows:\n  numbers:\n    source: { generate: { count: 3 } }\n    sink: { stdout: {} }\n');
    const bundled = statSync(join(pkg, 'dist/ix.mjs')).mtimeMs;
    const check = spawnSync(process.execPath, [join(pkg, 'bin/ix.js'), 'check', 'plain.yaml'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
    expect(statSync(join(pkg, 'dist/ix.mjs')).mtimeMs).toBe(bundled);
  }, 90_000);
});
