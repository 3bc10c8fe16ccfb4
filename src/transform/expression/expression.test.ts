import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IxError } from '../../core/errors.js';
import { compileExpression, compileTemplate, configureEvaluation, ITERATION_BUDGET, LIMITS } from './index.js';

const rec = {
  name: '  Ada Lovelace ',
  age: '42',
  status: 'paid',
  region: 'eu',
  customer: { address: { city: 'Berlin' }, email: 'ada@example.com' },
  items: [
    { sku: 'a-1', qty: 2, price: 3.5 },
    { sku: 'b-2', qty: 1, price: 10 },
  ],
  tags: ['x', 'y'],
};
const ctx = { payload: rec, headers: { 'content-type': 'json', tenant: 't1' }, meta: { source: 'file' }, key: 'k1', id: 'm1' };

function both(src: string, c: Parameters<ReturnType<typeof compileExpression>>[0] = ctx): unknown {
  const a = compileExpression(src, { backend: 'closure' })(c);
  const b = compileExpression(src, { backend: 'codegen' })(c);
  expect(b).toEqual(a);
  return a;
}

describe('expressions', () => {
  it.each([
    ['1 + 2 * 3', 7],
    ['(1 + 2) * 3', 9],
    ["'a' + 1", 'a1'],
    ["'a' & null & 'b'", 'ab'],
    ['10 / 4', 2.5],
    ['1 / 0', null],
    ['7 % 3', 1],
    ['-age', -42],
    ['age * 2', 84],
    ['missing + 1', null],
    ["status = 'paid'", true],
    ["status == 'paid' && region != 'us'", true],
    ["status = 'open' or region = 'eu'", true],
    ['not (1 < 2)', false],
    ["'b' > 'a'", true],
    ["1 < 'a'", false],
    ["'eu' in ['eu', 'us']", true],
    ["'Love' in name", true],
    ["'city' in customer.address", true],
    ['customer.address.city', 'Berlin'],
    ["customer['address'].city", 'Berlin'],
    ['items[0].sku', 'a-1'],
    ['items[-1].sku', 'b-2'],
    ['items[5].sku', undefined],
    ['items.length', 2],
    ['name.length', 15],
    ['missing.deep.path', undefined],
    ["missing ?? 'dflt'", 'dflt'],
    ["region = 'eu' ? 'Europe' : 'Other'", 'Europe'],
    ['$record.region', 'eu'],
    ['$.region', 'eu'],
    ["$headers.tenant", 't1'],
    ["$headers['content-type']", 'json'],
    ['$meta.source', 'file'],
    ['$key', 'k1'],
    ['$id', 'm1'],
    ['[1, 2, region]', [1, 2, 'eu']],
    ["{ a: 1, 'b c': region, d: missing }", { a: 1, 'b c': 'eu' }],
    ['`status`', 'paid'],
    ['true and null', false],
    ['1e3', 1000],
    ["'it\\'s'", "it's"],
  ])('%s', (src, want) => {
    expect(both(src)).toEqual(want);
  });

  it.each([
    ['trim(name)', 'Ada Lovelace'],
    ['name | trim | upper', 'ADA LOVELACE'],
    ['name | trim | lower', 'ada lovelace'],
    ["title('hello wORLD')", 'Hello World'],
    ["capitalize('ada')", 'Ada'],
    ["substring('abcdef', 1, 3)", 'bcd'],
    ["substring('abcdef', -2)", 'ef'],
    ["pad(42, 6)", '000042'],
    ["padStart('7', 3, ' ')", '  7'],
    ["padEnd('7', 3, '.')", '7..'],
    ["concat('a', 1, null, true)", 'a1true'],
    ["join(tags, '|')", 'x|y'],
    ["split('a,b', ',')", ['a', 'b']],
    ["replace('a-b-c', '-', '+')", 'a+b+c'],
    ["contains(name, 'Ada')", true],
    ["startsWith('abc', 'ab')", true],
    ["endsWith('abc', 'bc')", true],
    ["length(tags)", 2],
    ["test('abc123', '\\\\d+')", true],
    ["extract('order-1234-x', '(\\\\d+)')", '1234'],
    ["extract('order-1234-x', '[a-z]+', 0)", 'order'],
    ["extract('xyz', '\\\\d')", null],
    ["regexReplace('a1b22', '\\\\d+', '#')", 'a#b#'],
    ["regexReplace('John Smith', '(\\\\w+) (\\\\w+)', '$2, $1')", 'Smith, John'],
    ["number('3.5')", 3.5],
    ['integer(3.9)', 3],
    ['string(12)', '12'],
    ["boolean('yes')", true],
    ["boolean('off')", false],
    ['round(2.345, 2)', 2.35],
    ['round(2.5)', 3],
    ['floor(2.7)', 2],
    ['ceil(2.1)', 3],
    ['abs(-2)', 2],
    ['min(3, 1, 2)', 1],
    ['max([3, 1, 2])', 3],
    ['count(items)', 2],
    ['count(items, i => i.qty > 1)', 1],
    ['sum(items, i => i.qty * i.price)', 17],
    ['sum([1, 2, null])', 3],
    ['avg(items, i => i.price)', 6.75],
    ['avg([])', null],
    ['map(items, i => i.sku)', ['a-1', 'b-2']],
    ['map(items, (i, n) => n)', [0, 1]],
    ['filter(items, i => i.price > 5)', [{ sku: 'b-2', qty: 1, price: 10 }]],
    ["find(items, i => i.sku = 'b-2').qty", 1],
    ['some(items, i => i.qty > 1)', true],
    ['every(items, i => i.qty > 1)', false],
    ['first(tags)', 'x'],
    ['last(tags)', 'y'],
    ['distinct([1, 1, 2])', [1, 2]],
    ["sort([3, 'a', 1])", [1, 3, 'a']],
    ['sort(items, i => -i.price)[0].sku', 'b-2'],
    ['reverse([1, 2])', [2, 1]],
    ['flatten([[1], [2, 3]])', [1, 2, 3]],
    ['keys(customer.address)', ['city']],
    ['values(customer.address)', ['Berlin']],
    ['merge({ a: 1 }, { b: 2 })', { a: 1, b: 2 }],
    ['exists(region)', true],
    ['exists(nope)', false],
    ["empty('')", true],
    ['coalesce(nope, null, 3)', 3],
    ['type(items)', 'array'],
    ['json({ a: 1 })', '{"a":1}'],
    ["parseJson('{\"a\":[1]}')", { a: [1] }],
    ["toDate('2024-03-05T10:20:30+01:00')", '2024-03-05T09:20:30.000Z'],
    ["toDate('05/03/2024 10:20', 'DD/MM/YYYY HH:mm', 'Europe/Berlin')", '2024-03-05T09:20:00.000Z'],
    ["toDate('07/01/2024 10:20', 'MM/DD/YYYY HH:mm', 'Europe/Berlin')", '2024-07-01T08:20:00.000Z'],
    ["toDate('2024-03-05')", '2024-03-05T00:00:00.000Z'],
    ["toDate('2024-03-05 10:00', null, 'America/New_York')", '2024-03-05T15:00:00.000Z'],
    ["toDate('5 Mar 2024 3:04 PM', 'D MMM YYYY h:mm A')", '2024-03-05T15:04:00.000Z'],
    ["toDate(1700000000, 'X')", '2023-11-14T22:13:20.000Z'],
    ["toMillis('1970-01-01T00:00:01Z')", 1000],
    ["formatDate('2024-07-01T12:00:00Z', 'YYYY-MM-DD HH:mm Z', 'America/New_York')", '2024-07-01 08:00 -04:00'],
    ["formatDate('2024-01-01T00:00:00Z', 'dddd D MMMM YYYY [at] h a')", 'Monday 1 January 2024 at 12 am'],
    ["sha256('abc')", 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
    ["md5('abc')", '900150983cd24fb0d6963f7d28e17f72'],
    ["mask('4111111111111111')", '************1111'],
    ["mask('secret', 0, '#')", '######'],
    ['maskEmail(customer.email)', 'a**@example.com'],
  ])('%s', (src, want) => {
    expect(both(src)).toEqual(want);
  });

  it('now() reads the injected clock', () => {
    expect(compileExpression('now()', { now: () => 0 })({})).toBe('1970-01-01T00:00:00.000Z');
    expect(compileExpression('now()', { now: () => 0, backend: 'closure' })({})).toBe('1970-01-01T00:00:00.000Z');
  });

  it('lookup tables resolve at compile time', () => {
    const lookups = new Map([['countries', new Map<string, unknown>([['DE', 'Germany']])]]);
    expect(compileExpression("lookup('DE', 'countries')", { lookups })({})).toBe('Germany');
    expect(compileExpression("lookup('FR', 'countries', 'unknown')", { lookups })({})).toBe('unknown');
    expect(compileExpression("'DE' | lookup('countries')", { lookups })({})).toBe('Germany');
    expect(() => compileExpression("lookup('DE', 'nope')", { lookups })).toThrow(/unknown lookup table "nope".*countries/);
  });

  it('value overrides $ while fields stay on the payload', () => {
    expect(compileExpression('$ * 2 + count(items)')({ payload: rec, value: 5 })).toBe(12);
    expect(compileExpression('$')({ payload: rec, value: undefined })).toBeUndefined();
  });

  it('templates', () => {
    expect(compileTemplate('orders.${region}')(ctx)).toBe('orders.eu');
    expect(compileTemplate('${upper(region)}-${ { a: 1 }.a }-${nope}')(ctx)).toBe('EU-1-');
    expect(compileTemplate('literal \\${x}')(ctx)).toBe('literal ${x}');
    expect(compileTemplate('plain').constant).toBe(true);
    expect(() => compileTemplate('a ${b')).toThrow(/unclosed/);
    expect(compileTemplate("${'}'}")(ctx)).toBe('}');
  });

  describe('errors', () => {
    it.each([
      ['1 +', /unexpected end/],
      ['foo(', /unknown function foo/],
      ['trim(1, 2)', /trim\(\) takes 1 argument, got 2/],
      ['map(items, 1)', /is a function/],
      ['trim(x => x)', /not a function/],
      ["test(name, region)", /literal string/],
      ["test(name, '(a+)+')", /backtrack/],
      ["test(name, '(')", /invalid regular expression/],
      ["toDate(x, 'YYYY', 'Mars/Olympus')", /unknown time zone/],
      ['$nope', /unknown variable \$nope/],
      ["'abc", /unterminated string/],
      ['a @ b', /unexpected character/],
      ['1 2', /unexpected number 2/],
    ])('%s', (src, re) => {
      expect(() => compileExpression(src)).toThrow(re);
    });

    it('run-time errors are not retryable', () => {
      try {
        compileExpression("number('abc')")({});
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(IxError);
        expect((err as IxError).code).toBe('IX_EXPR_RUNTIME');
        expect((err as IxError).retryable).toBe(false);
        expect((err as IxError).message).toMatch(/cannot convert string "abc" to a number/);
      }
      // a blank text is not 0, though Number() says so; surrounding white space is skipped
      for (const blank of ['', ' ', '\t\n', '\u00a0\ufeff']) expect(() => compileExpression('number(x)')({ payload: { x: blank } })).toThrow(/cannot convert/);
      expect(compileExpression('number(x)')({ payload: { x: ' \t12.5\n' } })).toBe(12.5);
      expect(compileExpression('number(x)')({ payload: { x: ' 0 ' } })).toBe(0);
      expect(() => compileExpression("'a' * 2")({})).toThrow(/cannot apply "\*"/);
      expect(() => compileExpression('sum(name)')({ payload: rec })).toThrow(/sum\(\) expects an array/);
    });
  });

  describe('sandbox', () => {
    it.each(['constructor', '__proto__', 'prototype', 'a.constructor', 'a.__proto__', "a['__proto__']", "a['prototype']", '{ __proto__: 1 }', "{ 'constructor': 1 }", 'map(items, constructor => 1)'])(
      'refuses %s at compile time',
      (src) => {
        expect(() => compileExpression(src)).toThrow(/not allowed/);
      },
    );

    it('refuses forbidden keys computed at run time', () => {
      for (const k of ['constructor', '__proto__', 'prototype']) {
        expect(() => compileExpression('a[k]')({ payload: { a: {}, k } })).toThrow(/not allowed/);
        expect(() => compileExpression('a[k]', { backend: 'closure' })({ payload: { a: {}, k } })).toThrow(/not allowed/);
      }
    });

    it('never returns inherited functions', () => {
      expect(both('toString', { payload: {} })).toBeUndefined();
      expect(both('a.hasOwnProperty', { payload: { a: {} } })).toBeUndefined();
      expect(both("tags['map']", { payload: { tags: [] } })).toBeUndefined();
      expect(both("region['toUpperCase']", { payload: { region: 'eu' } })).toBeUndefined();
    });

    it('has no names for globals', () => {
      for (const src of ['process', 'globalThis', 'require', 'Function', 'eval', 'this']) {
        expect(compileExpression(src)({ payload: {} })).toBeUndefined();
      }
      expect(() => compileExpression('process.exit(1)')).toThrow();
      expect(() => compileExpression('require("fs")')).toThrow(/unknown function require/);
      expect(() => compileExpression('eval("1")')).toThrow(/unknown function eval/);
      expect(() => compileExpression('hasOwnProperty(1)')).toThrow(/unknown function/);
      expect(() => compileExpression('toString(1)')).toThrow(/unknown function/);
    });

    it('parseJson drops forbidden keys', () => {
      const v = compileExpression("parseJson('{\"__proto__\":{\"x\":1},\"a\":1}')")({}) as Record<string, unknown>;
      expect(v).toEqual({ a: 1 });
      expect(({} as Record<string, unknown>)['x']).toBeUndefined();
    });

    it('bounds size', () => {
      expect(() => compileExpression('1+'.repeat(LIMITS.maxSource) + '1')).toThrow(/characters; the limit/);
      expect(() => compileExpression('('.repeat(60) + '1' + ')'.repeat(60))).toThrow(/nests deeper/);
      expect(() => compileExpression('[' + Array.from({ length: 1600 }, () => '1').join(',') + ']')).toThrow(/more than 1500 nodes/);
      expect(() => compileExpression('map(a, x => map(a, y => map(a, z => map(a, w => 1))))')).toThrow(/lambdas nest deeper/);
    });

    it('bounds time: iterations per evaluation', () => {
      const a = Array.from({ length: 2000 }, (_, i) => i);
      const e = compileExpression('count(a, x => count(a, y => y > x) > 0)');
      expect(() => e({ payload: { a } })).toThrow(new RegExp(`more than ${ITERATION_BUDGET} iterations`));
      // the budget is per evaluation, not per expression
      expect(compileExpression('count(a, x => x > 10)')({ payload: { a } })).toBe(1989);
      expect(compileExpression('count(a, x => x > 10)')({ payload: { a } })).toBe(1989);
    });

    it('bounds time: a wall-clock deadline per evaluation, read every so many iterations', () => {
      // a test clock that moves 10 ms each time it is read: no dependence on the machine's speed
      let now = 0;
      const before = configureEvaluation({ deadlineMs: 100, clock: () => (now += 10) });
      try {
        const a = Array.from({ length: 2000 }, (_, i) => i);
        for (const backend of ['closure', 'codegen'] as const) {
          const heavy = compileExpression('count(a, x => count(a, y => y > x) > 0)', { backend });
          const start = now;
          expect(() => heavy({ payload: { a } })).toThrow(/expression failed: evaluation took longer than its deadline of 100 ms/);
          // it stopped at the first look at the clock past the deadline
          expect(now - start).toBeLessThanOrEqual(120);
          // the deadline is per evaluation: a light one after it passes
          expect(compileExpression('count(a, x => x > 10)', { backend })({ payload: { a } })).toBe(1989);
        }
        expect(() => configureEvaluation({ deadlineMs: 0 })).toThrow(/positive number of milliseconds/);
      } finally {
        configureEvaluation(before);
      }
      // with the real clock and the default deadline, the same light evaluation passes
      expect(compileExpression('count(a, x => x > 10)')({ payload: { a: Array.from({ length: 2000 }, (_, i) => i) } })).toBe(1989);
    });

    it('fuzzed expressions cannot reach process, constructors or prototypes, and terminate', () => {
      const atoms = ['$', 'a', 'b', 'k', '$record', '$headers', 'process', 'global', 'this', 'Function', 'x', "'constructor'", "'__proto__'", "'prototype'", '1', "'s'", 'items', 'toString', 'valueOf', 'call', 'apply', 'bind'];
      const fns = ['trim', 'map', 'filter', 'sum', 'count', 'merge', 'parseJson', 'json', 'keys', 'values', 'concat', 'sort', 'lookup', 'eval', 'require', 'Function', 'constructor'];
      const gen = fc.letrec<{ e: string }>((tie) => ({
        e: fc.oneof(
          { depthSize: 'small', withCrossShrink: true },
          fc.constantFrom(...atoms),
          fc.tuple(tie('e'), fc.constantFrom(...atoms)).map(([a, b]) => `${a}.${b.replace(/'/g, '')}`),
          fc.tuple(tie('e'), tie('e')).map(([a, b]) => `${a}[${b}]`),
          fc.tuple(fc.constantFrom(...fns), fc.array(tie('e'), { maxLength: 3 })).map(([f, as]) => `${f}(${as.join(', ')})`),
          fc.tuple(fc.constantFrom(...fns), tie('e')).map(([f, b]) => `${f}(items, x => ${b})`),
          fc.tuple(tie('e'), fc.constantFrom('+', '-', '*', '=', '??', 'and', '|', 'in'), tie('e')).map(([a, o, b]) => `${a} ${o} ${b}`),
          fc.tuple(tie('e'), tie('e')).map(([a, b]) => `{ k: ${a}, '__proto__': ${b} }`),
          fc.string({ maxLength: 12 }),
        ),
      }));
      const payload = { a: { b: 1 }, b: 'constructor', k: '__proto__', x: 'prototype', items: [{ b: 1 }, 'constructor', [1]], big: Array.from({ length: 3000 }, (_, i) => i) };
      // heavy shapes: nested iteration over a large array, so that the bounds are reached
      const heavy = fc
        .tuple(fc.constantFrom('map', 'filter', 'count', 'sum', 'sort', 'some'), fc.constantFrom('map', 'count', 'sum', 'filter'), gen.e)
        .map(([f, g, b]) => `${f}(big, x => ${g}(big, y => ${b}))`);
      // a test clock that moves 1 ms per read: an evaluation ends by the deadline at the
      // latest after deadline / 1 ms reads of the clock, however slow the machine is
      let now = 0;
      const deadlineMs = 200;
      const before = configureEvaluation({ deadlineMs, clock: () => ++now });
      const ended = { value: 0, error: 0, deadline: 0, budget: 0 };
      try {
        fc.assert(
          fc.property(fc.oneof({ weight: 9, arbitrary: gen.e }, { weight: 1, arbitrary: heavy }), fc.constantFrom<'closure' | 'codegen'>('closure', 'codegen'), (src, backend) => {
            let fn: ReturnType<typeof compileExpression>;
            try {
              fn = compileExpression(src, { backend });
            } catch (err) {
              expect(err).toBeInstanceOf(IxError);
              return;
            }
            let out: unknown;
            const start = now;
            try {
              out = fn({ payload, headers: {}, meta: {} });
            } catch (err) {
              // a sandbox error, never anything else
              expect(err).toBeInstanceOf(IxError);
              expect((err as IxError).code).toBe('IX_EXPR_RUNTIME');
              expect(now - start).toBeLessThanOrEqual(deadlineMs + 2);
              ended.error++;
              if (/deadline/.test((err as Error).message)) ended.deadline++;
              if (/iterations in one evaluation/.test((err as Error).message)) ended.budget++;
              return;
            }
            ended.value++;
            expect(now - start).toBeLessThanOrEqual(deadlineMs + 2);
            const seen = new Set<unknown>();
            const visit = (v: unknown): void => {
              if (v === null || typeof v !== 'object') {
                expect(typeof v).not.toBe('function');
                return;
              }
              if (seen.has(v)) return;
              seen.add(v);
              expect(v).not.toBe(process);
              expect(v).not.toBe(globalThis);
              expect(v).not.toBe(Object.prototype);
              expect(v).not.toBe(Array.prototype);
              for (const k of Object.keys(v)) visit((v as Record<string, unknown>)[k]);
            };
            expect(typeof out).not.toBe('function');
            visit(out);
            expect(({} as Record<string, unknown>)['k']).toBeUndefined();
            expect(Object.getPrototypeOf(payload)).toBe(Object.prototype);
          }),
          { numRuns: 3000 },
        );
      } finally {
        configureEvaluation(before);
      }
      // both ends were reached: values, and evaluations stopped by the deadline
      expect(ended.value).toBeGreaterThan(100);
      expect(ended.deadline).toBeGreaterThan(5);
    });
  });
});
