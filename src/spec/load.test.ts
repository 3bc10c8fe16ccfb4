import { describe, expect, it } from 'vitest';
import { createRegistry } from '../app/registry.js';
import { loadSpecText } from './load.js';
import { SpecError } from './problem.js';

const registry = createRegistry();

function problems(yaml: string): string[] {
  try {
    loadSpecText(yaml, 'spec.yaml', registry, { env: {} });
    return [];
  } catch (err) {
    if (!(err instanceof SpecError)) throw err;
    return err.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
  }
}

// Each kind's config schema is compiled the first time a spec names the kind: what a spec
// gets (defaults, coercion, errors at file:line:col) must not depend on that.
describe('spec: component configs', () => {
  it('applies the defaults and coercions of each named kind, wherever it sits', () => {
    const loaded = loadSpecText(
      'version: 1\nflows:\n  a:\n    source: { generate: { count: "3" } }\n    sinks:\n      - stdout: {}\n      - file: { path: out.jsonl }\n',
      'spec.yaml',
      registry,
      { env: {} },
    );
    const flow = loaded.spec.flows[0];
    expect(flow?.source.config).toMatchObject({ count: 3 });
    expect(flow?.sinks[1]?.config).toMatchObject({ path: 'out.jsonl', sync: 'batch' });
  });

  it('reports every bad component config, with the type of the value found', () => {
    expect(
      problems(
        'version: 1\nflows:\n  a:\n    source: { file: { path: x.jsonl, formt: csv } }\n    sinks:\n      - stdout: {}\n      - file: null\n  b:\n    source: { generate: { count: many } }\n    sink: { stdout: {} }\n',
      ),
    ).toEqual([
      '4:38: unknown key "formt" (did you mean "format"?)',
      '7:15: flows.a.sinks[1].file must be object, not null',
      '9:34: flows.b.source.generate.count must be integer, not string',
    ]);
  });
});
