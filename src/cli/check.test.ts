import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSpecs } from './check.js';

const bin = join(import.meta.dirname, '../../bin/ix.js');
const fixtures = join(import.meta.dirname, 'fixtures');

function ix(args: string[], env: Record<string, string> = {}): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, cwd: join(import.meta.dirname, '../..') });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

describe('ix check', () => {
  it('reports the expected one-line error for each broken spec', async () => {
    const expected = readFileSync(join(fixtures, 'expected.txt'), 'utf8').trim().split('\n');
    const specs = readdirSync(fixtures).filter((f) => f.endsWith('.yaml') && f !== 'ok.yaml');
    expect(specs.length).toBeGreaterThanOrEqual(10);
    const cwd = process.cwd();
    process.chdir(join(import.meta.dirname, '../..'));
    try {
      for (const spec of specs) {
        const r = await checkSpecs([`src/cli/fixtures/${spec}`]);
        expect(r.ok, spec).toBe(false);
        expect(r.problems, spec).toHaveLength(1);
        expect(expected, spec).toContain(r.problems[0]);
        expect(r.problems[0]).toMatch(new RegExp(`^src/cli/fixtures/${spec.replace('.', '\\.')}:\\d+:\\d+: `));
      }
    } finally {
      process.chdir(cwd);
    }
  });

  it('exits 1 with the problem on stderr from the command line', () => {
    const r = ix(['check', 'src/cli/fixtures/unknown-kind.yaml']);
    expect(r.code).toBe(1);
    expect(r.err).toBe('src/cli/fixtures/unknown-kind.yaml:5:7: unknown source kind "fiel" (did you mean "file"?)\n');
  });

  it('accepts a good spec and exits 0', () => {
    const r = ix(['check', 'src/cli/fixtures/ok.yaml']);
    expect(r.code).toBe(0);
    expect(r.out).toBe('src/cli/fixtures/ok.yaml: ok (1 flow)\n');
  });

  it('ix run refuses a spec whose input file is missing before any flow runs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-missing-'));
    const spec = join(dir, 'spec.yaml');
    writeFileSync(
      spec,
      'version: 1\nadmin: { enabled: false }\nflows:\n  first:\n    source: { generate: { count: 3 } }\n    sinks: [ { stdout: {} }, { file: { path: first.jsonl } } ]\n  second:\n    source: { file: { path: nope.jsonl } }\n    sink: { file: { path: second.jsonl } }\n',
    );
    const r = ix(['run', spec]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`${spec}:8:29: file not found: nope.jsonl\n`);
    expect(r.out).toBe('');
    expect(existsSync(join(dir, 'first.jsonl'))).toBe(false);
    expect(existsSync(join(dir, 'second.jsonl'))).toBe(false);
  });

  it('never prints a secret value in an error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-secret-'));
    const spec = join(dir, 'spec.yaml');
    writeFileSync(
      spec,
      'version: 1\nsecrets: { TOKEN: env:IX_TEST_TOKEN }\nflows:\n  f:\n    source: { generate: { count: "${secrets.TOKEN}" } }\n    sink: { file: { path: "${secrets.TOKEN}", format: xml } }\n',
    );
    const r = ix(['check', spec], { IX_TEST_TOKEN: 'hunter2-very-secret' });
    expect(r.code).toBe(1);
    expect(r.err).toContain('count must be integer');
    expect(r.err).not.toContain('hunter2');
  });

  it('prints the JSON Schema generated from the registry', () => {
    const schema = JSON.parse(execFileSync(process.execPath, [bin, 'schema'], { encoding: 'utf8' })) as {
      properties: { flows: { additionalProperties: { properties: { source: { properties: Record<string, unknown> } } } } };
    };
    const sources = Object.keys(schema.properties.flows.additionalProperties.properties.source.properties);
    expect(sources).toEqual(expect.arrayContaining(['file', 'generate', 'http-server', 'stdin']));
  });
});
