import jsonata from 'jsonata';
import { describe, expect, it } from 'vitest';
import { benchRecord, COUNTRIES, handWritten, jsonataSource, oursMapping } from './mapping-cases.js';

describe('mapping bench cases', () => {
  it('ours, hand-written and JSONata give the same records', async () => {
    const ours = oursMapping();
    const expr = jsonata(jsonataSource);
    for (let i = 0; i < 100; i++) {
      const r = benchRecord(i);
      const want = handWritten(r);
      expect(ours(r)).toEqual(want);
      expect(JSON.parse(JSON.stringify(await expr.evaluate(r, { countries: COUNTRIES })))).toEqual(want);
    }
  });
});
