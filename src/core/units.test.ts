import { describe, expect, it } from 'vitest';
import { parseDuration, parseRate, parseSize } from './units.js';
import { Watermark } from './watermark.js';

describe('units', () => {
  it('parses durations', () => {
    expect(parseDuration('200ms')).toBe(200);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250')).toBe(250);
    expect(parseDuration(42)).toBe(42);
    expect(() => parseDuration('5 minutes')).toThrow(/invalid duration/);
    expect(() => parseDuration('')).toThrow(/invalid duration/);
    expect(() => parseDuration(-1)).toThrow(/invalid duration/);
  });
  it('parses rates', () => {
    expect(parseRate('100/min')).toEqual({ count: 100, perMs: 60_000 });
    expect(parseRate('20/s')).toEqual({ count: 20, perMs: 1000 });
    expect(parseRate('1000/hour')).toEqual({ count: 1000, perMs: 3_600_000 });
    expect(parseRate('10/5s')).toEqual({ count: 10, perMs: 5000 });
    expect(() => parseRate('fast')).toThrow(/invalid rate/);
    expect(() => parseRate('5/fortnight')).toThrow(/invalid rate unit/);
    expect(() => parseRate('0/s')).toThrow(/positive/);
  });
  it('parses sizes', () => {
    expect(parseSize('1MiB')).toBe(1_048_576);
    expect(parseSize('64KiB')).toBe(65_536);
    expect(parseSize('10MB')).toBe(10_000_000);
    expect(parseSize('512')).toBe(512);
    expect(parseSize(7)).toBe(7);
    expect(() => parseSize('big')).toThrow(/invalid size/);
    expect(() => parseSize('3 parsecs')).toThrow(/invalid size/);
  });
});

describe('Watermark', () => {
  it('commits only the contiguous settled prefix', () => {
    const w = new Watermark<number>();
    const a = w.track(10);
    const b = w.track(20);
    const c = w.track(30);
    c.settle(true);
    expect(w.position).toBeUndefined();
    a.settle(true);
    expect(w.position).toBe(10);
    b.settle(true);
    expect(w.position).toBe(30);
  });
  it('stops advancing after a batch failed to settle', () => {
    const w = new Watermark<number>();
    const a = w.track(1);
    const b = w.track(2);
    const c = w.track(3);
    a.settle(true);
    b.settle(false);
    c.settle(true);
    expect(w.position).toBe(1);
  });
});
