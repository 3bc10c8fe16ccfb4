import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startIx } from '../testing/cli.js';

const root = join(import.meta.dirname, '../..');

function jsonl(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('examples/transform.yaml (end to end through `ix run`)', () => {
  it('maps, validates and routes the orders into three files; bad records are dead-lettered with the reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-transform-'));
    cpSync(join(root, 'examples'), join(dir, 'examples'), { recursive: true });
    const run = startIx(['run', 'examples/transform.yaml'], { cwd: dir });
    expect(await run.exited).toBe(0);
    const out = join(dir, 'out/transform');
    const eu = jsonl(join(out, 'eu.jsonl'));
    const priority = jsonl(join(out, 'priority.jsonl'));
    const other = jsonl(join(out, 'other.jsonl'));

    expect(eu.map((r) => r['vendor_id'])).toEqual(['ord-1001', 'ord-1004', 'ord-1008', 'ord-1010']);
    expect(priority.map((r) => r['vendor_id'])).toEqual(['ord-1003', 'ord-1005']);
    expect(other.map((r) => r['vendor_id'])).toEqual(['ord-1002', 'ord-1011']);
    // Every field of one record: rename, trim and case, masking, cast, date with format and
    // zone, CSV lookups, nested path, array sum, conditional, default.
    expect(eu[0]).toEqual({
      vendor_id: 'ord-1001',
      name: 'Ada Lovelace',
      email: 'a**@example.com',
      amount_cents: 12990,
      placed_at: '2024-03-05T08:15:00.000Z',
      country: 'Germany',
      region: 'eu',
      city: 'Berlin',
      units: 3,
      tier: 'standard',
      channel: 'app',
    });
    expect(other[1]).toMatchObject({ country: 'unknown', region: 'other', channel: 'web' });
    expect(priority.every((r) => r['tier'] === 'gold' && r['region'] !== 'eu')).toBe(true);

    const err = run.stderr();
    expect(err).toContain('flow orders: in 11, delivered 8, dead-lettered 3, filtered 0');
    expect(err).toContain('field total → amount_cents: cannot convert string \\"not a number\\" to a number');
    expect(err).toContain('field placed → placed_at: \\"31/02/2024 10:00\\" is not a date in format DD/MM/YYYY HH:mm');
    expect(err).toContain('schema validation failed: /name must NOT have fewer than 1 characters');

    const dlq = startIx(['dlq', 'list', '--spec', 'examples/transform.yaml'], { cwd: dir });
    expect(await dlq.exited).toBe(0);
    const rows = dlq.stdout().trim().split('\n').slice(1);
    expect(rows).toHaveLength(3);
    expect(rows.filter((r) => r.includes('step:map'))).toHaveLength(2);
    expect(rows.filter((r) => r.includes('step:validate'))).toHaveLength(1);
  }, 90_000);
});
