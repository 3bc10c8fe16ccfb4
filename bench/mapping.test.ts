import jsonata from 'jsonata';
import { describe, expect, it } from 'vitest';
import { benchRecord, handWritten, jsonataBindings, jsonataSource, oursMapping } from './mapping-cases.js';

describe('mapping bench cases', () => {
  it('ours, hand-written and JSONata give the same records', async () => {
    const ours = oursMapping();
    const expr = jsonata(jsonataSource);
    const seen = { tier: 0 };
    for (let i = 0; i < 100; i++) {
      const r = benchRecord(i * 97);
      const want = handWritten(r);
      expect(ours(r)).toEqual(want);
      expect(JSON.parse(JSON.stringify(await expr.evaluate(r, jsonataBindings)))).toEqual(want);
      seen.tier += 'tier' in want ? 1 : 0;
    }
    // the conditional field is written for some records only
    expect(seen.tier).toBeGreaterThan(0);
    expect(seen.tier).toBeLessThan(100);
    // the date is read in Berlin time: winter +01:00, summer +02:00
    expect(handWritten(benchRecord(0))['created_at']).toBe('2023-12-31T23:00:00.000Z');
    expect(handWritten(benchRecord(5))['created_at']).toBe('2024-06-06T03:05:00.000Z');
  });
});
