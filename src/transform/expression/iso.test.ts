import { describe, expect, it } from 'vitest';
import { isoString } from './date.js';

describe('isoString', () => {
  it('is toISOString on random instants of years 0000–9999 and on the edges', () => {
    let seed = 7;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const from = -62_167_219_200_000;
    const to = 253_402_300_800_000;
    const edges = [from, from - 1, to - 1, to, 0, -1, 1, 951_782_400_000 /* 2000-02-29 */, 4_107_542_400_000 /* 2100-03-01 */, -2_203_891_200_000 /* 1900-02-28 */];
    for (const ms of edges) expect(isoString(ms), String(ms)).toBe(new Date(ms).toISOString());
    for (let i = 0; i < 20_000; i++) {
      const ms = Math.floor(from + next() * (to - from));
      expect(isoString(ms), String(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it('cuts fractions of a millisecond as Date does, and throws as Date does on an invalid time', () => {
    for (const ms of [1000.9, -1000.9, -0.5, 0.5, 1_704_067_200_123.999]) expect(isoString(ms), String(ms)).toBe(new Date(ms).toISOString());
    expect(() => isoString(NaN)).toThrow(RangeError);
    expect(() => isoString(8.64e15 + 1)).toThrow(RangeError);
    expect(isoString(-8.64e15)).toBe('-271821-04-20T00:00:00.000Z');
  });
});
