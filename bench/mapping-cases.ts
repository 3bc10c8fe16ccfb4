import { buildMapping, type CompiledMapping } from '../src/transform/index.js';

/**
 * The 12-field mapping of `npm run bench -- mapping`, three ways: a spec mapping (ours), the
 * same by hand in JavaScript (the limit), and one JSONata expression (what a Node-RED user has).
 * The fields, as the issue lists them: rename (vendor_id), trim (name), cast (total), nested
 * path (city), date parse with a format and a time zone (created_at, Europe/Berlin), lookup
 * (country_name), a conditional field written only when its row's `when` holds (tier),
 * array count (line_count) and sum (quantity), default (channel), concat (label), and a case
 * change (email).
 */

export const COUNTRIES: Record<string, string> = { DE: 'Germany', FR: 'France', NG: 'Nigeria', PE: 'Peru', JP: 'Japan' };
const codes = ['DE', 'FR', 'NG', 'PE', 'JP', 'XX'];

export function benchRecord(i: number): Record<string, unknown> {
  const day = 1 + (i % 28);
  const month = 1 + (i % 12);
  const rec: Record<string, unknown> = {
    external_id: `ord_${(i * 7919).toString(36)}`,
    full_name: `  Customer ${i}  `,
    total: String(Math.round(i * 13.7) / 100),
    created: `${String(day).padStart(2, '0')}/${String(month).padStart(2, '0')}/2024 ${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}`,
    country: codes[i % codes.length],
    customer: { address: { city: ['Berlin', 'Lagos', 'Lima', 'Osaka'][i % 4], zip: String(10000 + (i % 9000)) }, email: `Customer${i}@Example.com` },
    items: Array.from({ length: 1 + (i % 4) }, (_, k) => ({ sku: `sku-${(i + k) % 100}`, qty: 1 + ((i + k) % 3), price: 2.5 * (1 + k) })),
    status: i % 5 === 0 ? 'refunded' : 'paid',
    note: 'n'.repeat(20),
  };
  if (i % 2 === 0) rec['channel'] = i % 4 === 0 ? 'store' : 'app';
  return rec;
}

export const mappingConfig = {
  lookups: { countries: COUNTRIES },
  fields: [
    { from: 'external_id', to: 'vendor_id' },
    { from: 'full_name', to: 'name', transform: 'trim' },
    { from: 'total', to: 'total', type: 'number' },
    { from: 'customer.address.city', to: 'city' },
    { from: 'created', to: 'created_at', type: 'date', format: 'DD/MM/YYYY HH:mm', timezone: 'Europe/Berlin' },
    { from: 'country', to: 'country_name', lookup: 'countries' },
    { to: 'tier', default: 'gold', when: 'number(total) >= 100' },
    { to: 'line_count', transform: 'count(items)' },
    { to: 'quantity', transform: 'sum(items, i => i.qty)' },
    { from: 'channel', to: 'channel', default: 'web' },
    { to: 'label', transform: "concat(external_id, '-', upper(country))" },
    { from: 'customer.email', to: 'email', transform: 'lower' },
  ],
};

export function oursMapping(): CompiledMapping {
  return buildMapping('bench', mappingConfig);
}

const DATE = /^\s*(\d{2})\/(\d{2})\/(\d{4}) (\d{2}):(\d{2})\s*$/;

const berlin = new Intl.DateTimeFormat('en-US', {
  timeZone: 'Europe/Berlin', hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
});

/** Minutes Berlin is ahead of UTC at instant `ms`. */
function berlinOffset(ms: number): number {
  let y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  for (const p of berlin.formatToParts(ms)) {
    if (p.type === 'year') y = +p.value;
    else if (p.type === 'month') mo = +p.value;
    else if (p.type === 'day') d = +p.value;
    else if (p.type === 'hour') h = +p.value;
    else if (p.type === 'minute') mi = +p.value;
    else if (p.type === 'second') s = +p.value;
  }
  return Math.round((Date.UTC(y, mo - 1, d, h, mi, s) - (ms - (((ms % 1000) + 1000) % 1000))) / 60000);
}

/**
 * Berlin wall-clock time (given as UTC fields of `wall`) to the instant, by hand: the offset a
 * day before and after; when they differ, the earlier instant that fits (a gap: the offset before).
 * Also bound into JSONata as `$berlin`, which has no time zones of its own.
 */
export function berlinToUtc(wall: number): number {
  const before = berlinOffset(wall - 86_400_000);
  const after = berlinOffset(wall + 86_400_000);
  if (before === after) return wall - before * 60000;
  for (const off of [Math.max(before, after), Math.min(before, after)]) if (berlinOffset(wall - off * 60000) === off) return wall - off * 60000;
  return wall - before * 60000;
}

/** The same mapping, written by hand the way one would for a single integration. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- hand-written code reads untyped JSON
type Any = any;

export function handWritten(r: Record<string, Any>): Record<string, unknown> {
  const total = r.total == null ? null : Number(r.total);
  if (total !== null && Number.isNaN(total)) throw new Error(`total: not a number: ${r.total}`);
  let created: string | null = null;
  if (r.created != null) {
    const m = DATE.exec(r.created);
    if (!m) throw new Error(`created: not a date: ${r.created}`);
    created = new Date(berlinToUtc(Date.UTC(+m[3]!, +m[2]! - 1, +m[1]!, +m[4]!, +m[5]!))).toISOString();
  }
  const items: Any[] = Array.isArray(r.items) ? r.items : [];
  let quantity = 0;
  for (const it of items) if (it?.qty != null) quantity += Number(it.qty);
  const out: Record<string, unknown> = {
    vendor_id: r.external_id ?? null,
    name: r.full_name == null ? null : String(r.full_name).trim(),
    total,
    city: r.customer?.address?.city ?? null,
    created_at: created,
    country_name: r.country == null ? null : (COUNTRIES[r.country] ?? null),
  };
  if (total !== null && total >= 100) out['tier'] = 'gold';
  out['line_count'] = items.length;
  out['quantity'] = quantity;
  out['channel'] = r.channel ?? 'web';
  out['label'] = `${r.external_id ?? ''}-${r.country == null ? '' : String(r.country).toUpperCase()}`;
  out['email'] = r.customer?.email == null ? null : String(r.customer.email).toLowerCase();
  return out;
}

export const jsonataSource = `{
  "vendor_id": external_id,
  "name": $trim(full_name),
  "total": $number(total),
  "city": customer.address.city,
  "created_at": $fromMillis($berlin($toMillis($trim(created), "[D01]/[M01]/[Y0001] [H01]:[m01]"))),
  "country_name": ($l := $lookup($countries, country); $exists($l) ? $l : null),
  "tier": $number(total) >= 100 ? "gold",
  "line_count": $count(items),
  "quantity": $sum(items.qty),
  "channel": $exists(channel) ? channel : "web",
  "label": external_id & "-" & $uppercase(country),
  "email": $lowercase(customer.email)
}`;

/** What the JSONata expression is evaluated with: the lookup table and the time zone helper. */
export const jsonataBindings = { countries: COUNTRIES, berlin: berlinToUtc };
