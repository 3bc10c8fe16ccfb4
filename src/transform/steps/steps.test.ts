import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../../app/registry.js';
import { engineFromYaml, type TestEngine } from '../../testing/harness.js';
import { feed, outcomesOf, receivedBy, registerMemory, resetMemory } from '../../testing/memory.js';

const registry = registerMemory(createRegistry());

let t: TestEngine | undefined;
beforeEach(() => resetMemory());
afterEach(async () => {
  await t?.close();
  t = undefined;
});

async function runSpec(yaml: string, dir?: string): Promise<TestEngine> {
  t = await engineFromYaml(yaml, registry, dir ? { dir } : {});
  t.engine.start();
  await t.engine.done();
  return t;
}

describe('transform steps in a flow', () => {
  it('map (named and inline), filter, validate, split', async () => {
    feed('src', [
      { id: 'A1', full_name: ' Ada ', total: '10.5', status: 'paid', items: [{ sku: 'x' }, { sku: 'y' }] },
      { id: 'A2', full_name: 'Bob', total: '3', status: 'open', items: [{ sku: 'z' }] },
      { id: 'A3', full_name: 'Cy', total: 'n/a', status: 'paid', items: [] },
      { id: 'A4', full_name: 'Di', total: '7', status: 'paid', items: [] },
      { full_name: 'Ed', total: '1', status: 'paid', items: [{ sku: 'w' }] },
    ]);
    const spec = `version: 1
mappings:
  order:
    fields:
      - { from: id, to: order_id }
      - { from: full_name, to: name, transform: trim }
      - { from: total, to: cents, transform: "round($ * 100)", type: integer }
      - { from: status, to: status }
      - { from: items, to: items }
flows:
  f:
    source: { memory: { name: src } }
    steps:
      - map: order
      - filter: "status = 'paid'"
      - validate:
          schema: { type: object, required: [order_id, name], properties: { order_id: { type: string, pattern: "^A" }, cents: { type: integer, minimum: 0 } } }
      - split: { items: items, parent: order }
      - map: { fields: [ { from: item.sku, to: sku, transform: upper }, { from: order.order_id, to: order } ] }
    sink: { memory: { name: out } }
`;
    const te = await runSpec(spec);
    expect(receivedBy('out').map((m) => [m.id, m.payload, m.meta['split']])).toEqual([
      ['src-1/0', { sku: 'X', order: 'A1' }, { index: 0, count: 2 }],
      ['src-1/1', { sku: 'Y', order: 'A1' }, { index: 1, count: 2 }],
    ]);
    // A2 filtered (open), A3 dead-lettered (conversion), A4 filtered (no items), the last dead-lettered (no id)
    expect(te.engine.stats()['f']).toMatchObject({ in: 5, out: 1, deadLettered: 2, filtered: 2 });
    const dead = await te.store.listDeadLetters({ flow: 'f' });
    expect(dead.map((d) => [d.message.id, d.stage, d.attempts])).toEqual([
      ['src-3', 'step:map', 1],
      ['src-5', 'step:validate', 1],
    ]);
    expect(dead[0]?.reason).toMatch(/mapping "order" field total → cents: cannot apply "\*" to string "n\/a"/);
    expect(dead[1]?.reason).toMatch(/schema validation failed: \/order_id must be string/);
    expect(outcomesOf('src').flatMap((o) => o.outcomes)).toEqual([1, 3, 2, 3, 2]);
  });

  it('validate reads a schema file and lists every violation by JSON pointer', async () => {
    const dir = (await import('node:fs')).mkdtempSync(join((await import('node:os')).tmpdir(), 'ix-validate-'));
    writeFileSync(
      join(dir, 'order.json'),
      JSON.stringify({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        type: 'object',
        required: ['id', 'email'],
        additionalProperties: false,
        properties: { id: { type: 'string' }, email: { type: 'string', format: 'email' }, lines: { type: 'array', items: { type: 'object', properties: { qty: { type: 'integer' } } } } },
      }),
    );
    feed('src', [{ id: 1, email: 'nope', lines: [{ qty: 1 }, { qty: 'two' }], extra: true }, { id: 'ok', email: 'a@b.co' }]);
    const te = await runSpec(`version: 1\nflows:\n  f:\n    source: { memory: { name: src } }\n    steps: [ { validate: ./order.json } ]\n    sink: { memory: { name: out } }\n`, dir);
    expect(receivedBy('out').map((m) => m.id)).toEqual(['src-2']);
    const [dead] = await te.store.listDeadLetters({ flow: 'f' });
    expect(dead?.reason).toContain('/extra is not allowed');
    expect(dead?.reason).toContain('/id must be string');
    expect(dead?.reason).toContain('/email must match format "email"');
    expect(dead?.reason).toContain('/lines/1/qty must be integer');
  });

  it('refuses a bad expression or schema when the flow is built, at its position', async () => {
    feed('src', []);
    await expect(engineFromYaml(`version: 1\nflows:\n  f:\n    source: { memory: { name: src } }\n    steps: [ { filter: "a.constructor" } ]\n    sink: { memory: { name: out } }\n`, registry)).rejects.toThrow(
      /spec.yaml:5:.*not allowed/,
    );
    await expect(engineFromYaml(`version: 1\nflows:\n  f:\n    source: { memory: { name: src } }\n    steps: [ { map: nope } ]\n    sink: { memory: { name: out } }\n`, registry)).rejects.toThrow(
      /unknown reference "mappings.nope"/,
    );
    await expect(engineFromYaml(`version: 1\nflows:\n  f:\n    source: { memory: { name: src } }\n    steps: [ { validate: { schema: { type: 12 } } } ]\n    sink: { memory: { name: out } }\n`, registry)).rejects.toThrow(
      /not a valid JSON Schema/,
    );
    await expect(
      engineFromYaml(`version: 1\nmappings:\n  m:\n    fields: [ { from: a, to: b, type: date, timezone: Mars/Base } ]\nflows:\n  f:\n    source: { memory: { name: src } }\n    sink: { memory: { name: out } }\n`, registry),
    ).rejects.toThrow(/spec.yaml:4:.*unknown time zone/);
  });
});
