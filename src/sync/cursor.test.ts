import { describe, expect, it } from 'vitest';
import { cursorOrder, lookBack } from './cursor.js';

describe('sync cursors', () => {
  it('orders numbers, times in ISO and database text, and refuses what cannot be compared', () => {
    expect(cursorOrder(42)).toBe(42);
    expect(cursorOrder('17')).toBe(17);
    expect(cursorOrder('2026-01-01T00:00:01.000Z')).toBe(Date.parse('2026-01-01T00:00:01Z'));
    expect(cursorOrder('2026-01-01 00:00:01.123456+00')).toBe(Date.parse('2026-01-01T00:00:01.123Z'));
    expect(cursorOrder(new Date('2026-01-01T00:00:00Z'))).toBe(Date.parse('2026-01-01T00:00:00Z'));
    for (const bad of [null, undefined, '', 'soon', {}, Number.NaN]) expect(cursorOrder(bad)).toBeUndefined();
  });

  it('moves a cursor back by the look-back window', () => {
    expect(lookBack('2026-01-01T00:10:00.000Z', '5m')).toBe('2026-01-01T00:05:00.000Z');
    expect(lookBack('2026-01-01 00:10:00+00', '1h')).toBe('2025-12-31T23:10:00.000Z');
    expect(lookBack(1000, 100)).toBe(900);
    expect(lookBack('1000', 100)).toBe(900);
    expect(lookBack('2026-01-01T00:10:00.000Z', undefined)).toBe('2026-01-01T00:10:00.000Z');
  });
});
