import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildMapping, interpretMapping, planFor } from './index.js';

/** The compiled mapping equals the reference interpreter on random records and random mappings. */

const scalar = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.constantFrom(' padded ', '12', '3.5', 'yes', 'no', '2024-03-05', '2024-03-05T10:00:00Z', 'abc-123', 'DE', 'US'),
  fc.integer({ min: -1000, max: 1000 }),
  fc.double({ min: -1e6, max: 1e6, noNaN: true }),
  fc.boolean(),
  fc.constant(null),
);
const leafObject = fc.record({ x: scalar, y: scalar }, { requiredKeys: [] });
const value = fc.oneof(scalar, leafObject, fc.array(fc.oneof(scalar, leafObject), { maxLength: 4 }));
const record = fc.record(
  { a: value, b: value, c: leafObject, items: fc.array(fc.oneof(leafObject, scalar), { maxLength: 4 }), s: fc.constantFrom('paid', 'open', null) },
  { requiredKeys: [] },
);

const froms = ['a', 'b', 'c', 'c.x', 'c.y', 'items', 'items[0]', 'items[1].x', 'items[-1].y', 'nope', 'nope.deeper', 's', '$'];
const tos = ['a', 'b', 'out', 'o.p', 'o.q', 'o.p.z', 'r[0]', 'r[1].k', 'c', 'c.extra'];
const transforms = [
  'trim',
  'upper',
  'lower | trim',
  '$ + 1',
  'number($) * 2',
  "concat($, '-', s)",
  'count(items)',
  'sum(items, i => i.x)',
  "$ ?? 'z'",
  'string',
  'json',
  'c.x',
  'length',
  "s = 'paid' ? 'P' : 'N'",
  'type($)',
  "lookup('t', 'dflt')",
  "extract('(\\\\d+)')",
  "pad(6, '0')",
  'mask',
  'round($, 1)',
];
const whens = ["s = 'paid'", 'exists(a)', 'count(items) > 1', 'c.x != null', 'true'];

const row = fc.record(
  {
    from: fc.constantFrom(...froms),
    to: fc.constantFrom(...tos),
    transform: fc.oneof(fc.constantFrom(...transforms), fc.array(fc.constantFrom(...transforms), { minLength: 1, maxLength: 3 })),
    type: fc.constantFrom('string', 'number', 'integer', 'boolean', 'date', 'any'),
    default: fc.oneof(scalar, fc.constant({ k: 1 })),
    when: fc.constantFrom(...whens),
    missing: fc.constantFrom('null', 'skip', 'error'),
    sensitive: fc.boolean(),
    lookup: fc.constant('t'),
  },
  { requiredKeys: ['to'] },
).map((r) => {
  const out: Record<string, unknown> = { ...r };
  if (out['from'] === undefined && out['transform'] === undefined && !('default' in out)) out['from'] = 'a';
  return out;
});
const flattenRow = fc.record({ from: fc.constantFrom('c', 'a', 'items'), to: fc.constantFrom('', 'f'), flatten: fc.constantFrom('_', '.') });
const eachRow = fc
  .record({ from: fc.constantFrom('items', 'a', 'b'), to: fc.constantFrom('lines', 'o.lines'), sub: fc.array(row, { maxLength: 3 }), keep: fc.boolean() })
  .map(({ from, to, sub, keep }) => ({ from, to, each: { fields: sub, unmapped: keep ? 'keep' : 'drop' } }));

const mapping = fc.record(
  {
    fields: fc.array(fc.oneof({ weight: 6, arbitrary: row }, { weight: 1, arbitrary: flattenRow }, { weight: 1, arbitrary: eachRow }), { maxLength: 8 }),
    unmapped: fc.constantFrom('keep', 'drop'),
    drop: fc.subarray(['a', 'b', 'c', 'items']),
    missing: fc.constantFrom('null', 'skip', 'error'),
  },
  { requiredKeys: ['fields'] },
).map((m) => ({ ...m, lookups: { t: { DE: 'Germany', '12': 'twelve', yes: true, paid: { nested: 1 } } } }));

/** Mappings whose rows each write one top-level field (the compiler builds one object literal). */
const literalMapping = mapping.map((m) => ({
  ...m,
  unmapped: 'drop',
  missing: m.missing === 'skip' ? 'null' : m.missing,
  fields: (m.fields as Record<string, unknown>[])
    .filter((r) => r['flatten'] === undefined)
    .map((r) => {
      const { when: _when, ...rest } = r;
      const to = String(r['to']).split(/[.[]/)[0] || 'out';
      return { ...rest, to, ...(r['missing'] === 'skip' ? { missing: 'null' } : {}) };
    }),
}));

function outcome(f: () => unknown): { ok: unknown } | { err: string } {
  try {
    return { ok: f() };
  } catch (err) {
    return { err: (err as Error).message };
  }
}

describe('compiled mapping vs reference interpreter', () => {
  it('agree on random records and random mappings', () => {
    let errors = 0;
    let outputs = 0;
    let refused = 0;
    let literal = 0;
    fc.assert(
      fc.property(fc.oneof(mapping, literalMapping), fc.array(record, { minLength: 1, maxLength: 5 }), (config, records) => {
        const built = outcome(() => buildMapping('p', config));
        if ('err' in built) {
          // a mapping refused when built is refused the same way by the plan
          expect(outcome(() => planFor('p', config))).toEqual(built);
          refused++;
          return;
        }
        const compiled = buildMapping('p', config);
        // rows that each write one top-level field compile to a single object literal
        if (/^return \{ "/m.test(compiled.code)) literal++;
        const plan = planFor('p', config);
        for (const rec of records) {
          const before = structuredClone(rec);
          const a = outcome(() => compiled(rec, { headers: {}, meta: {} }));
          const b = outcome(() => interpretMapping(plan, rec, { headers: {}, meta: {} }));
          expect(a).toEqual(b);
          if ('ok' in a && 'ok' in b) {
            // the same fields in the same order (what a JSON sink writes), none left undefined
            expect(Object.keys(a.ok as object)).toEqual(Object.keys(b.ok as object));
            expect(JSON.stringify(a.ok)).toBe(JSON.stringify(b.ok));
          }
          expect(rec).toEqual(before);
          if ('err' in a) errors++;
          else outputs++;
        }
      }),
      { numRuns: 600 },
    );
    // both kinds of outcome were exercised
    expect(errors).toBeGreaterThan(50);
    expect(outputs).toBeGreaterThan(50);
    expect(refused).toBeLessThan(400);
    expect(literal).toBeGreaterThan(20);
    console.log(`mapping property: ${outputs} outputs, ${errors} errors, ${refused} refused mappings, ${literal} built as one literal`);
  });
});
