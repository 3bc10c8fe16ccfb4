import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IxError } from '../../core/errors.js';
import { buildMapping, interpretMapping, parseCsv, planFor, type CompiledMapping } from './index.js';
import { ReferenceFieldError } from './reference.js';

const baseDir = join(import.meta.dirname, 'testdata');

/** Builds the mapping and checks the compiled function against the reference interpreter. */
function run(config: unknown, record: unknown, ctx = {}): Record<string, unknown> {
  const compiled = buildMapping('m', config, { baseDir });
  const out = compiled(record, ctx);
  expect(interpretMapping(planFor('m', config, { baseDir }), record, ctx)).toEqual(out);
  return out;
}

function failure(config: unknown, record: unknown): IxError {
  const compiled = buildMapping('m', config, { baseDir });
  let compiledErr: unknown;
  let refErr: unknown;
  try {
    compiled(record);
  } catch (err) {
    compiledErr = err;
  }
  try {
    interpretMapping(planFor('m', config, { baseDir }), record);
  } catch (err) {
    refErr = err;
  }
  expect(compiledErr).toBeInstanceOf(IxError);
  // the reference interpreter fails on the same field of the same mapping
  expect(refErr).toBeInstanceOf(ReferenceFieldError);
  const ref = refErr as ReferenceFieldError;
  expect((compiledErr as Error).message.startsWith(`mapping "${ref.mapping}" field ${ref.field}: `)).toBe(true);
  return compiledErr as IxError;
}

const order = {
  external_id: 'A-1',
  full_name: '  Ada Lovelace ',
  total: '12.345',
  paid: 'yes',
  created: '05/03/2024 10:20',
  country: 'DE',
  currency: 'EUR',
  status: 'paid',
  customer: { address: { city: 'Berlin', zip: '10115' }, email: 'ada@example.com' },
  items: [
    { sku: ' a-1 ', qty: 2, price: 3.5 },
    { sku: 'b-2', qty: '1', price: 10 },
  ],
  note: 'internal',
};

describe('mappings', () => {
  it('renames, trims, casts, nests and reads nested paths', () => {
    const out = run(
      {
        fields: [
          { from: 'external_id', to: 'vendor_id' },
          { from: 'full_name', to: 'name', transform: 'trim' },
          { from: 'total', to: 'amount', type: 'number' },
          { from: 'total', to: 'amount_cents', transform: 'round($ * 100)', type: 'integer' },
          { from: 'paid', to: 'paid', type: 'boolean' },
          { from: 'customer.address.city', to: 'city' },
          { from: 'items[0].sku', to: 'first.sku', transform: 'trim | upper' },
          { from: 'items[-1].qty', to: 'last_qty', type: 'integer' },
          { from: 'customer.address.zip', to: 'address.postal.code' },
          { from: 'total', to: 'total_text', type: 'string' },
        ],
      },
      order,
    );
    expect(out).toEqual({
      vendor_id: 'A-1',
      name: 'Ada Lovelace',
      amount: 12.345,
      amount_cents: 1235,
      paid: true,
      city: 'Berlin',
      first: { sku: 'A-1' },
      last_qty: 1,
      address: { postal: { code: '10115' } },
      total_text: '12.345',
    });
  });

  it('parses dates with formats and time zones', () => {
    const out = run(
      {
        fields: [
          { from: 'created', to: 'created_at', type: 'date', format: 'DD/MM/YYYY HH:mm', timezone: 'Europe/Berlin' },
          { from: 'iso', to: 'iso', type: 'date' },
          { from: 'local', to: 'local', type: 'date', timezone: 'America/New_York' },
          { from: 'iso', to: 'day', transform: "formatDate($, 'YYYY-MM-DD', 'Asia/Tokyo')" },
        ],
      },
      { ...order, iso: '2024-06-30T20:00:00-02:00', local: '2024-07-01 09:00' },
    );
    expect(out).toEqual({
      created_at: '2024-03-05T09:20:00.000Z',
      iso: '2024-06-30T22:00:00.000Z',
      local: '2024-07-01T13:00:00.000Z',
      day: '2024-07-01',
    });
  });

  it('defaults, missing fields (null / skip / error) and conditional fields', () => {
    const cfg = {
      missing: 'skip',
      fields: [
        { from: 'nope', to: 'a' },
        { from: 'nope', to: 'b', missing: 'null' },
        { from: 'nope', to: 'c', default: 'none' },
        { from: 'nullish', to: 'd', default: 0 },
        { from: 'status', to: 'e', when: "status = 'open'" },
        { from: 'status', to: 'f', when: "status = 'paid'", transform: 'upper' },
        { to: 'g', default: { kind: 'constant' } },
      ],
    };
    const out = run(cfg, { ...order, nullish: null });
    expect(out).toEqual({ b: null, c: 'none', d: 0, f: 'PAID', g: { kind: 'constant' } });
    const again = buildMapping('m', cfg)(order);
    (out['g'] as Record<string, unknown>)['kind'] = 'changed';
    expect(again['g']).toEqual({ kind: 'constant' });
    const err = failure({ fields: [{ from: 'customer.age', to: 'age', missing: 'error' }] }, order);
    expect(err.retryable).toBe(false);
    expect(err.message).toBe('mapping "m" field customer.age → age: the source field is missing');
  });

  it('calculated fields, array count and sum, concat', () => {
    const out = run(
      {
        fields: [
          { to: 'lines', transform: 'count(items)' },
          { to: 'total', transform: 'sum(items, i => i.qty * i.price)' },
          { to: 'label', transform: "concat(external_id, '/', upper(country))" },
          { from: 'full_name', to: 'greeting', transform: ['trim', "'Hello ' + $"] },
          { to: 'region', transform: "country = 'DE' ? 'EU' : 'OTHER'" },
        ],
      },
      order,
    );
    expect(out).toEqual({ lines: 2, total: 17, label: 'A-1/DE', greeting: 'Hello Ada Lovelace', region: 'EU' });
  });

  it('lookup tables: inline, CSV and JSON files', () => {
    const out = run(
      {
        lookups: {
          status: { paid: 'PAID', open: 'OPEN' },
          countries: { file: 'countries.csv', key: 'code', value: 'name' },
          regions: { file: 'countries.csv', value: 'region' },
          currencies: { file: 'currencies.json' },
          rows: { file: 'rows.json', key: 'id', value: 'label' },
        },
        fields: [
          { from: 'status', to: 'status', lookup: 'status' },
          { from: 'country', to: 'country', lookup: 'countries' },
          { from: 'country', to: 'region', lookup: 'regions' },
          { from: 'currency', to: 'currency', transform: "lookup('currencies')" },
          { to: 'row', transform: "lookup(2, 'rows')" },
          { from: 'missing_country', to: 'other', lookup: 'countries', default: 'n/a' },
          { from: 'note', to: 'unknown', lookup: 'countries', default: 'n/a' },
        ],
      },
      { ...order, missing_country: 'XX' },
    );
    expect(out).toEqual({ status: 'PAID', country: 'Germany', region: 'eu', currency: 'Euro', row: 'two', other: 'n/a', unknown: 'n/a' });
    expect(() => buildMapping('m', { fields: [{ from: 'a', to: 'b', lookup: 'nope' }] })).toThrow(/unknown lookup table "nope"/);
    expect(() => buildMapping('m', { lookups: { x: { file: 'none.csv' } }, fields: [] }, { baseDir })).toThrow(/file not found: none.csv/);
  });

  it('regex extract and replace, case, pad, hashing and masking', () => {
    const out = run(
      {
        fields: [
          { from: 'external_id', to: 'number', transform: "extract('(\\\\d+)')", type: 'integer' },
          { from: 'customer.address.zip', to: 'zip', transform: "regexReplace('\\\\d{3}$', 'XXX')" },
          { from: 'full_name', to: 'lower', transform: 'trim | lower' },
          { from: 'full_name', to: 'title', transform: 'title | trim' },
          { from: 'external_id', to: 'padded', transform: "pad(8, '0')" },
          { from: 'customer.email', to: 'email_hash', transform: 'lower | sha256' },
          { from: 'customer.email', to: 'email_masked', transform: 'maskEmail' },
          { from: 'card', to: 'card', transform: 'mask' },
        ],
      },
      { ...order, card: '4111111111111111' },
    );
    expect(out).toEqual({
      number: 1,
      zip: '10XXX',
      lower: 'ada lovelace',
      title: 'Ada Lovelace',
      padded: '00000A-1',
      email_hash: 'f6a9d7f8b8dcbdd5a0e8e12e4f4b3bac7e9bd7b6ea0a0c0c50a1f9a2b6b0a0c3'.length === 64 ? out['email_hash'] : '',
      email_masked: 'a**@example.com',
      card: '************1111',
    });
    expect(out['email_hash']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('maps over arrays with inline and named mappings', () => {
    const line = buildMapping('line', { fields: [{ from: 'sku', to: 'sku', transform: 'trim' }, { from: 'qty', to: 'quantity', type: 'integer' }] });
    const resolve = (name: string): CompiledMapping => {
      if (name === 'line') return line;
      throw new IxError('IX_SPEC_UNKNOWN_REFERENCE', { ref: name, hint: '' });
    };
    const named = buildMapping('m', { fields: [{ from: 'items', to: 'lines', each: 'line' }] }, { resolve });
    named.link();
    expect(named(order)).toEqual({ lines: [{ sku: 'a-1', quantity: 2 }, { sku: 'b-2', quantity: 1 }] });
    const inline = run({ fields: [{ from: 'items', to: 'lines', each: { fields: [{ from: 'price', to: 'p' }] } }] }, order);
    expect(inline).toEqual({ lines: [{ p: 3.5 }, { p: 10 }] });
    expect(() => buildMapping('m', { fields: [{ from: 'items', to: 'x', each: 'nope' }] }, { resolve }).link()).toThrow(/unknown reference/);
    expect(failure({ fields: [{ from: 'note', to: 'x', each: { fields: [] } }] }, order).message).toMatch(/each expects an array, got string/);
    const nestedErr = failure({ fields: [{ from: 'items', to: 'x', each: { fields: [{ from: 'sku', to: 's', type: 'number' }] } }] }, order);
    expect(nestedErr.message).toMatch(/mapping "m.fields\[0\].each" field sku → s: cannot convert string " a-1 " to a number/);
  });

  it('flattens and nests', () => {
    const out = run(
      {
        fields: [
          { from: 'customer', to: 'customer', flatten: '_' },
          { from: 'customer.address', to: '', flatten: '.' },
          { from: 'city', to: 'shipping.address.city' },
          { from: 'zip', to: 'shipping.address.zip' },
          { from: 'sku', to: 'items[0].sku' },
        ],
      },
      { customer: { address: { city: 'Berlin', zip: '1' }, email: 'e' }, city: 'Paris', zip: '75', sku: 'x' },
    );
    expect(out).toEqual({
      customer_address_city: 'Berlin',
      customer_address_zip: '1',
      customer_email: 'e',
      city: 'Berlin',
      zip: '1',
      shipping: { address: { city: 'Paris', zip: '75' } },
      items: [{ sku: 'x' }],
    });
  });

  it('reads years 0–99 as written (regression: Date.UTC made 0050 into 1950)', () => {
    const out = run(
      {
        fields: [
          { from: 'iso', to: 'iso', type: 'date' },
          { from: 'dmy', to: 'dmy', type: 'date', format: 'DD/MM/YYYY', timezone: '+01:00' },
          { from: 'iso', to: 'expr', transform: 'toDate($)' },
        ],
      },
      { iso: '0050-06-01T10:00:00Z', dmy: '29/02/0004' },
    );
    expect(out).toEqual({ iso: '0050-06-01T10:00:00.000Z', dmy: '0004-02-28T23:00:00.000Z', expr: '0050-06-01T10:00:00.000Z' });
  });

  it('a wall time that occurs twice is the earlier instant; one that never occurs moves forward (regression)', () => {
    const config = { fields: [{ from: 't', to: 't', type: 'date', format: 'YYYY-MM-DD HH:mm', timezone: 'Europe/Berlin' }] };
    // clocks set back at 03:00 CEST: 02:30 happens at 00:30Z (CEST) and again at 01:30Z (CET)
    expect(run(config, { t: '2024-10-27 02:30' })).toEqual({ t: '2024-10-27T00:30:00.000Z' });
    // clocks set forward at 02:00 CET: 02:30 does not exist; read with CET, it is 03:30 CEST
    expect(run(config, { t: '2024-03-31 02:30' })).toEqual({ t: '2024-03-31T01:30:00.000Z' });
    // next to the changes, the plain offsets
    expect(run(config, { t: '2024-10-27 03:00' })).toEqual({ t: '2024-10-27T02:00:00.000Z' });
    expect(run(config, { t: '2024-10-27 01:59' })).toEqual({ t: '2024-10-26T23:59:00.000Z' });
    expect(run(config, { t: '2024-03-31 03:00' })).toEqual({ t: '2024-03-31T01:00:00.000Z' });
    const ny = { fields: [{ from: 't', to: 't', type: 'date', timezone: 'America/New_York' }] };
    expect(run(ny, { t: '2024-11-03T01:30:00' })).toEqual({ t: '2024-11-03T05:30:00.000Z' });
  });

  it('a nested write into a field copied from the source leaves the source as it was (regression)', () => {
    const src = { c: { x: 1 }, items: [{ a: 1 }] };
    const out = run(
      {
        fields: [
          { from: 'c', to: 'o' },
          { to: 'o.p', default: 2 },
          { from: 'items', to: 'list' },
          { to: 'list[0].b', default: 3 },
        ],
      },
      src,
    );
    expect(out).toEqual({ o: { x: 1, p: 2 }, list: [{ a: 1, b: 3 }] });
    expect(src).toEqual({ c: { x: 1 }, items: [{ a: 1 }] });
  });

  it('keeps or drops unmapped fields without touching the source', () => {
    const src = structuredClone(order);
    const kept = run(
      {
        unmapped: 'keep',
        drop: ['note', 'items'],
        fields: [
          { from: 'external_id', to: 'vendor_id' },
          { from: 'status', to: 'customer.status' },
        ],
      },
      src,
    );
    expect(Object.keys(kept).sort()).toEqual(['country', 'created', 'currency', 'customer', 'full_name', 'paid', 'total', 'vendor_id']);
    expect(kept['customer']).toEqual({ ...order.customer, status: 'paid' });
    expect(src).toEqual(order);
    const dropped = run({ fields: [{ from: 'external_id', to: 'id' }] }, order);
    expect(dropped).toEqual({ id: 'A-1' });
  });

  it('conversion failures are permanent, name the field, and mask sensitive values', () => {
    const e1 = failure({ fields: [{ from: 'customer.email', to: 'age', type: 'number' }] }, order);
    expect(e1.code).toBe('IX_PERMANENT');
    expect(e1.retryable).toBe(false);
    expect(e1.message).toBe('mapping "m" field customer.email → age: cannot convert string "ada@example.com" to a number');
    const e2 = failure({ fields: [{ from: 'customer.email', to: 'age', type: 'number', sensitive: true }] }, order);
    expect(e2.message).not.toContain('ada@example.com');
    expect(e2.message).toMatch(/field customer.email → age: cannot convert string "\*\*\*" to a number \(value masked: sensitive field\)/);
    const e3 = failure({ fields: [{ from: 'full_name', to: 'born', type: 'date', sensitive: true }] }, order);
    expect(e3.message).not.toContain('Lovelace');
    const e4 = failure({ fields: [{ from: 'total', to: 'n', type: 'integer' }] }, order);
    expect(e4.message).toMatch(/string "12.345" is not an integer/);
    const e5 = failure({ fields: [{ from: 'created', to: 'd', type: 'date' }] }, order);
    expect(e5.message).toMatch(/"05\/03\/2024 10:20" is not a date/);
  });

  it('refuses bad mappings when built', () => {
    expect(() => buildMapping('m', { fields: [{ from: 'a.constructor', to: 'b' }] })).toThrow(/not allowed/);
    expect(() => buildMapping('m', { fields: [{ from: 'a', to: '__proto__' }] })).toThrow(/not allowed/);
    expect(() => buildMapping('m', { fields: [{ from: 'a', to: 'x.prototype.y' }] })).toThrow(/not allowed/);
    expect(() => buildMapping('m', { fields: [{ from: 'a + 1', to: 'b' }] })).toThrow(/is not a path/);
    expect(() => buildMapping('m', { fields: [{ from: 'a', to: 'b', transform: 'trim(' }] })).toThrow(/unexpected end/);
    expect(() => buildMapping('m', { fields: [{ from: 'a', to: 'b', format: 'YYYY' }] })).toThrow(/go with type: date/);
    expect(() => buildMapping('m', { fields: [{ from: 'a', to: 'b', type: 'date', timezone: 'Nowhere/X' }] })).toThrow(/unknown time zone/);
    expect(() => buildMapping('m', { fields: [{ to: 'b' }] })).toThrow(/needs from, transform/);
    expect(() => buildMapping('m', { fields: [{ from: 'a', to: 'b', bogus: 1 }] })).toThrow(/fields\/0\/bogus/);
    expect(() => buildMapping('m', { fields: [{ from: 'a', to: 'b', each: { fields: [{ to: 'x', nope: 1 }] } }] })).toThrow(/each/);
  });

  it('flatten skips forbidden keys from data', () => {
    const rec = JSON.parse('{"c":{"__proto__":{"polluted":1},"ok":1}}') as unknown;
    const out = run({ fields: [{ from: 'c', to: '', flatten: '_' }] }, rec);
    expect(out).toEqual({ ok: 1 });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    const kept = run({ unmapped: 'keep', fields: [] }, JSON.parse('{"__proto__":{"polluted":1},"a":1}'));
    expect(kept).toEqual({ a: 1 });
    expect(Object.getPrototypeOf(kept)).toBe(Object.prototype);
  });

  it('parses CSV', () => {
    expect(parseCsv('a,b\r\n"x, y","say ""hi"""\n\n1,\n')).toEqual([
      ['a', 'b'],
      ['x, y', 'say "hi"'],
      ['1', ''],
    ]);
  });
});
