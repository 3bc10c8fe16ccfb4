import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildMapping, interpretMapping, planFor } from './index.js';
import { ReferenceFieldError } from './reference.js';

/**
 * The compiled mapping equals the independent reference interpreter on random records and
 * random mappings: random transforms from a small grammar, random date formats and time
 * zones, missing-field policies, keep / drop of the unmapped fields.
 */

// ---- date formats and date texts ----

interface Wall { y: number; mo: number; d: number; h: number; mi: number; s: number; ms: number }
type Part = { tok: string } | { lit: string };

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const p2 = (n: number): string => String(n).padStart(2, '0');

function render(parts: readonly Part[], w: Wall, off: string): string {
  return parts
    .map((p) => {
      if ('lit' in p) return p.lit.startsWith('[') ? p.lit.slice(1, -1) : p.lit;
      switch (p.tok) {
        case 'YYYY': return String(w.y).padStart(4, '0');
        case 'YY': return p2(w.y % 100);
        case 'MMMM': return MONTHS[w.mo - 1] ?? 'Smarch';
        case 'MMM': return (MONTHS[w.mo - 1] ?? 'Smarch').slice(0, 3);
        case 'MM': return p2(w.mo);
        case 'M': return String(w.mo);
        case 'DD': return p2(w.d);
        case 'D': return String(w.d);
        case 'HH': return p2(w.h);
        case 'H': return String(w.h);
        case 'hh': return p2(w.h % 12 === 0 ? 12 : w.h % 12);
        case 'mm': return p2(w.mi);
        case 'ss': return p2(w.s);
        case 'SSS': return String(w.ms).padStart(3, '0');
        case 'A': return w.h < 12 ? 'AM' : 'PM';
        case 'Z': return off;
        case 'X': return String(Math.floor(Date.UTC(2000, 0, 1) / 1000 + w.y * 1000 + w.d));
        case 'x': return String(Date.UTC(2000, 0, 1) + w.y * 1000 + w.mi);
        default: return '';
      }
    })
    .join('');
}

const t = (tok: string): Part => ({ tok });
const l = (lit: string): Part => ({ lit });
const datePart = fc.constantFrom<Part[]>(
  [t('YYYY'), l('-'), t('MM'), l('-'), t('DD')],
  [t('DD'), l('/'), t('MM'), l('/'), t('YYYY')],
  [t('MM'), l('/'), t('DD'), l('/'), t('YY')],
  [t('D'), l('.'), t('M'), l('.'), t('YYYY')],
  [t('D'), l(' '), t('MMM'), l(' '), t('YYYY')],
  [t('MMMM'), l(' '), t('D'), l(', '), t('YYYY')],
  [t('YYYY'), t('MM'), t('DD')],
);
const timePart = fc.constantFrom<Part[]>(
  [],
  [l(' '), t('HH'), l(':'), t('mm')],
  [l('[T]'), t('HH'), l(':'), t('mm'), l(':'), t('ss')],
  [l(' '), t('H'), l(':'), t('mm'), l(':'), t('ss'), l('.'), t('SSS')],
  [l(' '), t('hh'), l(':'), t('mm'), l(' '), t('A')],
);
const zonePart = fc.constantFrom<Part[]>([], [], [l(' '), t('Z')], [t('Z')]);
const formatArb: fc.Arbitrary<Part[] | undefined> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(undefined) }, // ISO 8601
  { weight: 1, arbitrary: fc.constantFrom<Part[]>([t('X')], [t('x')]) },
  { weight: 5, arbitrary: fc.tuple(datePart, timePart, zonePart).map(([a, b, c]) => [...a, ...b, ...c]) },
);
const formatText = (parts: readonly Part[]): string => parts.map((p) => ('tok' in p ? p.tok : p.lit)).join('');

const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Lord_Howe', 'America/St_Johns', 'Pacific/Chatham', '+05:30', '-0300'];
const OFFSETS = ['Z', '+01:00', '-05:30', '+0545', '+14:00'];

/** Wall-clock times around clock changes (set back: twice; set forward: never) and random ones. */
const DST_WALLS: Wall[] = [
  { y: 2024, mo: 10, d: 27, h: 2, mi: 30, s: 0, ms: 0 }, // Berlin, twice
  { y: 2024, mo: 3, d: 31, h: 2, mi: 30, s: 0, ms: 0 }, // Berlin, never
  { y: 2024, mo: 11, d: 3, h: 1, mi: 30, s: 15, ms: 0 }, // New York, twice
  { y: 2024, mo: 3, d: 10, h: 2, mi: 15, s: 0, ms: 0 }, // New York, never
  { y: 2024, mo: 4, d: 7, h: 1, mi: 45, s: 0, ms: 0 }, // Lord Howe (half-hour change), twice
  { y: 2024, mo: 10, d: 6, h: 2, mi: 15, s: 0, ms: 0 }, // Lord Howe, never
  { y: 2024, mo: 4, d: 7, h: 2, mi: 45, s: 0, ms: 0 }, // Chatham, twice
];
const wallArb = (withOffset: boolean): fc.Arbitrary<Wall> =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(...DST_WALLS) },
    {
      weight: 5,
      arbitrary: fc.record({
        // years 1–99 only where the text carries its own offset (zones had odd offsets then)
        y: withOffset ? fc.oneof(fc.integer({ min: 1, max: 99 }), fc.integer({ min: 1970, max: 2037 })) : fc.integer({ min: 1970, max: 2037 }),
        mo: fc.oneof({ weight: 12, arbitrary: fc.integer({ min: 1, max: 12 }) }, { weight: 1, arbitrary: fc.constant(13) }),
        d: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 28 }) }, { weight: 2, arbitrary: fc.integer({ min: 29, max: 31 }) }),
        h: fc.oneof({ weight: 12, arbitrary: fc.integer({ min: 0, max: 23 }) }, { weight: 1, arbitrary: fc.constant(24) }),
        mi: fc.integer({ min: 0, max: 59 }),
        s: fc.integer({ min: 0, max: 59 }),
        ms: fc.integer({ min: 0, max: 999 }),
      }),
    },
  );

function isoText(w: Wall, off: string, kind: number): string {
  const date = `${String(w.y).padStart(4, '0')}-${p2(w.mo)}-${p2(w.d)}`;
  const time = [``, `T${p2(w.h)}:${p2(w.mi)}`, ` ${p2(w.h)}:${p2(w.mi)}:${p2(w.s)}`, `T${p2(w.h)}:${p2(w.mi)}:${p2(w.s)}.${String(w.ms).padStart(3, '0')}`][kind % 4];
  return `${date}${time}${kind >= 4 ? off : ''}`;
}

/** A text for a format: mostly in it, sometimes in another one or not a date at all. */
const dateText = (format: Part[] | undefined): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 8, arbitrary: fc.tuple(fc.boolean(), fc.constantFrom(...OFFSETS), fc.nat(7)).chain(([_, off, kind]) => {
      const withOffset = format === undefined ? kind >= 4 : format.some((p) => 'tok' in p && p.tok === 'Z');
      return wallArb(withOffset).map((w) => (format === undefined ? isoText(w, off, kind) : render(format, w, off)));
    }) },
    { weight: 1, arbitrary: fc.constantFrom('', 'not a date', '2024-02-30', 1_700_000_000_000, true, null) },
  );

// ---- records ----

const scalar = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.constantFrom(' padded ', '12', '3.5', 'yes', 'no', '2024-03-05', '2024-03-05T10:00:00Z', 'abc-123', 'DE', 'US', '0', ''),
  fc.integer({ min: -1000, max: 1000 }),
  fc.double({ min: -1e6, max: 1e6, noNaN: true }),
  fc.boolean(),
  fc.constant(null),
);
const leafObject = fc.record({ x: scalar, y: scalar }, { requiredKeys: [] });
const value = fc.oneof(scalar, leafObject, fc.array(fc.oneof(scalar, leafObject), { maxLength: 4 }));
const recordArb = (formats: readonly (Part[] | undefined)[]): fc.Arbitrary<Record<string, unknown>> =>
  fc.record(
    {
      a: value,
      b: value,
      c: fc.oneof(leafObject, fc.record({ x: leafObject, y: scalar })),
      items: fc.array(fc.oneof(leafObject, scalar), { maxLength: 4 }),
      s: fc.constantFrom('paid', 'open', null),
      dt: fc.tuple(...formats.map(dateText)).map((texts) => Object.fromEntries(texts.map((v, i) => [`f${i}`, v]))),
    },
    { requiredKeys: [] },
  );

// ---- transforms: a fixed list and a grammar ----

const FIXED = [
  'trim', 'upper', 'lower | trim', '$ + 1', 'number($) * 2', "concat($, '-', s)", 'count(items)', 'sum(items, i => i.x)', "$ ?? 'z'",
  'string', 'json', 'c.x', 'length', "s = 'paid' ? 'P' : 'N'", 'type($)', "lookup('t', 'dflt')", "extract('(\\\\d+)')", "pad(6, '0')",
  'mask', 'round($, 1)', 'toDate', "formatDate($, 'YYYY-MM-DD HH:mm', 'Europe/Berlin')",
];

const { expr } = fc.letrec<{ expr: string; atom: string }>((tie) => ({
  atom: fc.oneof(
    fc.constantFrom('$', 'a', 'b', 'c.x', 'c.x.y', 'c.y', 'items', 'items[0]', 's', 'nope', 'dt.f0', 'null', 'true', "'x'", "' Ab '", '0', '2', '-1.5', "'12'"),
  ),
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { weight: 4, arbitrary: tie('atom') },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom('trim', 'upper', 'lower', 'string', 'number', 'integer', 'boolean', 'length', 'type', 'json', 'mask', 'round', 'exists', 'empty', 'title', 'toDate'), tie('expr')).map(([f, e]) => `${f}(${e})`) },
    { weight: 2, arbitrary: fc.tuple(tie('expr'), fc.constantFrom('+', '-', '*', '/', '%', '&', '??', '=', '!=', '>', '<=', 'and', 'or', 'in'), tie('expr')).map(([x, op, y]) => `(${x} ${op} ${y})`) },
    { weight: 1, arbitrary: fc.tuple(tie('expr'), tie('expr'), tie('expr')).map(([c, x, y]) => `(${c} ? ${x} : ${y})`) },
    { weight: 1, arbitrary: tie('expr').map((e) => `not ${e}`) },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.constantFrom("concat(#, '-', #)", "pad(#, 4, '0')", "extract(#, '([0-9]+)')", "regexReplace(#, '[aeiou]', '_')", "lookup(#, 't', 'dflt')", 'substring(#, 1, 2)', "coalesce(#, 'none')", 'map(items, i => #)', 'count(#)', 'sum(#)', "formatDate(#, 'D MMM YYYY', 'Asia/Kolkata')"),
        tie('expr'),
        tie('expr'),
      ).map(([tpl, x, y]) => tpl.replace('#', x).replace('#', y).replace('i => ' + y, `i => ${y.replace(/\$/g, 'i')}`)),
    },
  ),
}));
const transformArb = fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...FIXED) }, { weight: 3, arbitrary: expr });
const whens = ["s = 'paid'", 'exists(a)', 'count(items) > 1', 'c.x != null', 'true', 'a', 'b and not a'];

const froms = ['a', 'b', 'c', 'c.x', 'c.y', 'c.x.x', 'items', 'items[0]', 'items[1].x', 'items[-1].y', 'nope', 'nope.deeper', 's', '$', 'a.length', 'a[0]'];
const tos = ['a', 'b', 'out', 'o', 'o.p', 'o.q', 'o.p.z', 'r[0]', 'r[1].k', 'c', 'c.extra', 'c.x.y'];

const rowArb = () =>
  fc
    .record(
      {
        from: fc.constantFrom(...froms),
        to: fc.constantFrom(...tos),
        transform: fc.oneof(transformArb, fc.array(transformArb, { minLength: 1, maxLength: 3 })),
        type: fc.constantFrom('string', 'number', 'integer', 'boolean', 'any'),
        default: fc.oneof(scalar, fc.constant({ k: 1 })),
        when: fc.constantFrom(...whens),
        missing: fc.constantFrom('null', 'skip', 'error'),
        sensitive: fc.boolean(),
        lookup: fc.constant('t'),
      },
      { requiredKeys: ['to'] },
    )
    .map((r) => {
      const out: Record<string, unknown> = { ...r };
      if (out['from'] === undefined && out['transform'] === undefined && !('default' in out)) out['from'] = 'a';
      return out;
    });

/** A date row: reads one of the record's date texts, in that text's format (or another) and a zone. */
const dateRowArb = (formats: readonly (Part[] | undefined)[]) =>
  fc
    .record({
      k: fc.nat(formats.length - 1),
      other: fc.nat(formats.length - 1),
      mismatch: fc.nat(9),
      to: fc.constantFrom('when', 'at', 'o.at'),
      timezone: fc.option(fc.constantFrom(...ZONES), { nil: undefined }),
      missing: fc.constantFrom('null', 'skip', 'error'),
      default: fc.option(fc.constantFrom('1970-01-01T00:00:00.000Z', null), { nil: undefined }),
      sensitive: fc.boolean(),
    })
    .map(({ k, other, mismatch, to, timezone, missing, default: dflt, sensitive }) => {
      const fmt = formats[mismatch === 0 ? other : k];
      return {
        from: `dt.f${k}`,
        to,
        type: 'date',
        ...(fmt !== undefined ? { format: formatText(fmt) } : {}),
        ...(timezone !== undefined ? { timezone } : {}),
        missing,
        ...(dflt !== undefined ? { default: dflt } : {}),
        sensitive,
      };
    });

const flattenRow = fc.record({ from: fc.constantFrom('c', 'a', 'items', 'c.x'), to: fc.constantFrom('', 'f'), flatten: fc.constantFrom('_', '.') });

const mappingArb = (formats: readonly (Part[] | undefined)[]) => {
  const row = rowArb();
  const dateRow = dateRowArb(formats);
  const eachRow = fc
    .record({ from: fc.constantFrom('items', 'a', 'b'), to: fc.constantFrom('lines', 'o.lines'), sub: fc.array(row, { maxLength: 3 }), keep: fc.boolean() })
    .map(({ from, to, sub, keep }) => ({ from, to, each: { fields: sub, unmapped: keep ? 'keep' : 'drop' } }));
  return fc
    .record(
      {
        fields: fc.array(
          fc.oneof({ weight: 6, arbitrary: row }, { weight: 3, arbitrary: dateRow }, { weight: 1, arbitrary: flattenRow }, { weight: 1, arbitrary: eachRow }),
          { maxLength: 8 },
        ),
        unmapped: fc.constantFrom('keep', 'drop'),
        drop: fc.subarray(['a', 'b', 'c', 'items', 'dt']),
        missing: fc.constantFrom('null', 'skip', 'error'),
      },
      { requiredKeys: ['fields'] },
    )
    .map((m) => ({ ...m, lookups: { t: { DE: 'Germany', '12': 'twelve', yes: true, paid: { nested: 1 }, true: 'T' } } }));
};

/** Mappings whose rows each write one top-level field (the compiler builds one object literal). */
const literalOf = (m: Record<string, unknown>): Record<string, unknown> => ({
  ...m,
  unmapped: 'drop',
  missing: m['missing'] === 'skip' ? 'null' : m['missing'],
  fields: (m['fields'] as Record<string, unknown>[])
    .filter((r) => r['flatten'] === undefined)
    .map((r) => {
      const { when: _when, ...rest } = r;
      const to = String(r['to']).split(/[.[]/)[0] || 'out';
      return { ...rest, to, ...(r['missing'] === 'skip' ? { missing: 'null' } : {}) };
    }),
});

const scenario = fc.array(formatArb, { minLength: 3, maxLength: 3 }).chain((formats) =>
  fc.tuple(fc.constant(formats), fc.tuple(mappingArb(formats), fc.boolean()).map(([m, lit]) => (lit ? literalOf(m) : m)), fc.array(recordArb(formats), { minLength: 1, maxLength: 5 })),
);

function outcome(f: () => unknown): { ok: unknown } | { err: string } {
  try {
    return { ok: f() };
  } catch (err) {
    return { err: (err as Error).message };
  }
}

describe('compiled mapping vs reference interpreter', () => {
  it('agree on random records and random mappings', () => {
    const seen = { errors: 0, outputs: 0, refused: 0, literal: 0, dates: 0, dateErrors: 0 };
    fc.assert(
      fc.property(scenario, ([, config, records]) => {
        const built = outcome(() => buildMapping('p', config));
        if ('err' in built) {
          // a mapping refused when built is refused the same way by the plan
          expect(outcome(() => planFor('p', config))).toEqual(built);
          seen.refused++;
          return;
        }
        const compiled = buildMapping('p', config);
        // rows that each write one top-level field compile to a single object literal
        if (/^return \{ "/m.test(compiled.code)) seen.literal++;
        const plan = planFor('p', config);
        for (const rec of records) {
          const before = structuredClone(rec);
          const a = outcome(() => compiled(rec, { headers: {}, meta: {} }));
          let b: { ok: unknown } | { err: string; field: string; mapping: string };
          try {
            b = { ok: interpretMapping(plan, rec, { headers: {}, meta: {} }) };
          } catch (err) {
            if (!(err instanceof ReferenceFieldError)) throw err;
            b = { err: err.message, mapping: err.mapping, field: err.field };
          }
          if ('ok' in b) {
            expect(a).toEqual(b);
            // the same fields in the same order (what a JSON sink writes), none left undefined
            expect(JSON.stringify((a as { ok: unknown }).ok)).toBe(JSON.stringify(b.ok));
            seen.outputs++;
            if (JSON.stringify(b.ok).includes('.000Z') || /\.\d{3}Z"/.test(JSON.stringify(b.ok))) seen.dates++;
          } else {
            // the same field of the same mapping fails
            expect('err' in a ? a.err : a).toMatch(new RegExp(`^${escape(`mapping "${b.mapping}" field ${b.field}: `)}`));
            seen.errors++;
            if (/ → (when|at|o\.at)$/.test(b.field)) seen.dateErrors++;
          }
          expect(rec).toEqual(before);
        }
      }),
      { numRuns: 800 },
    );
    // every kind of outcome was exercised
    expect(seen.errors).toBeGreaterThan(50);
    expect(seen.outputs).toBeGreaterThan(50);
    expect(seen.refused).toBeLessThan(500);
    expect(seen.literal).toBeGreaterThan(20);
    expect(seen.dates).toBeGreaterThan(20);
    expect(seen.dateErrors).toBeGreaterThan(5);
    console.log(`mapping property: ${JSON.stringify(seen)}`);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
