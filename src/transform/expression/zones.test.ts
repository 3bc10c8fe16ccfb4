import { describe, expect, it } from 'vitest';
import { formatDate, fromWallClock, parseDate } from './date.js';
import { cacheStats, intlOffset, offsetFnFor } from './zones.js';

const HOUR = 3_600_000;
const at = (iso: string): number => Date.parse(iso);

/** Changes of offset with the first instant of the new offset, as the tz database has them. */
const CHANGES: readonly [zone: string, first: string, before: number, after: number][] = [
  ['Europe/Berlin', '2024-03-31T01:00:00Z', 60, 120],
  ['Europe/Berlin', '2024-10-27T01:00:00Z', 120, 60],
  ['America/New_York', '2024-03-10T07:00:00Z', -300, -240],
  ['America/St_Johns', '2024-11-03T04:30:00Z', -150, -210],
  // half-hour daylight saving time, a change at half past a UTC hour
  ['Australia/Lord_Howe', '2024-04-06T15:00:00Z', 660, 630],
  ['Australia/Lord_Howe', '2024-10-05T15:30:00Z', 630, 660],
  // 45-minute zones
  ['Pacific/Chatham', '2024-04-06T14:00:00Z', 825, 765],
  ['Asia/Kathmandu', '1985-12-31T18:30:00Z', 330, 345],
  // a whole day skipped
  ['Pacific/Apia', '2011-12-30T10:00:00Z', -600, 840],
];

describe('zone offset cache', () => {
  it('finds each change to the second, whatever instant fills the hour first', () => {
    for (const [zone, first, before, after] of CHANGES) {
      const t = at(first);
      const offset = offsetFnFor(zone);
      // a query in the middle of the hour fills it
      expect(offset(t + 7 * 60_000 + 123), `${zone} ${first} +7min`).toBe(after);
      expect(offset(t - 1), `${zone} ${first} -1ms`).toBe(before);
      expect(offset(t - 1000), `${zone} ${first} -1s`).toBe(before);
      expect(offset(t), `${zone} ${first}`).toBe(after);
      expect(offset(t + 999), `${zone} ${first} +999ms`).toBe(after);
      // and the cache agrees with Intl at every second around the change
      for (let s = -90; s <= 90; s++) expect(offset(t + s * 1000 + 500), `${zone} ${first} ${s}s`).toBe(intlOffset(t + s * 1000 + 500, zone));
    }
  });

  it('agrees with Intl every 10 minutes over two days around each change', () => {
    for (const [zone, first] of CHANGES) {
      const offset = offsetFnFor(zone);
      const t = at(first);
      for (let ms = t - 26 * HOUR; ms <= t + 26 * HOUR; ms += 600_000 + 17) expect(offset(ms), `${zone} ${new Date(ms).toISOString()}`).toBe(intlOffset(ms, zone));
    }
  });

  it('agrees with Intl on instants from 1850 to 2100, with local mean time and historical offsets', () => {
    const zones = ['Europe/Amsterdam', 'Europe/London', 'Asia/Kolkata', 'Asia/Kathmandu', 'Africa/Casablanca', 'America/Sao_Paulo', 'Pacific/Chatham', 'Australia/Lord_Howe'];
    let seed = 42;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const from = at('1850-01-01T00:00:00Z');
    const to = at('2100-01-01T00:00:00Z');
    for (const zone of zones) {
      const offset = offsetFnFor(zone);
      for (let i = 0; i < 400; i++) {
        const ms = Math.floor(from + next() * (to - from));
        expect(offset(ms), `${zone} ${new Date(ms).toISOString()}`).toBe(intlOffset(ms, zone));
      }
    }
    // Amsterdam kept local mean time +00:19:32 until 1937; the offset rounds to whole minutes
    expect(offsetFnFor('Europe/Amsterdam')(at('1930-01-01T00:00:00Z'))).toBe(intlOffset(at('1930-01-01T00:00:00Z'), 'Europe/Amsterdam'));
  });

  it('asks Intl only for hours it has not seen', () => {
    const offset = offsetFnFor('America/Denver');
    const t = at('2024-05-05T12:00:00Z');
    offset(t);
    const calls = cacheStats.intlCalls;
    for (let i = 0; i < 1000; i++) offset(t + (i % 60) * 60_000);
    expect(cacheStats.intlCalls).toBe(calls);
    offset(t + HOUR);
    expect(cacheStats.intlCalls).toBe(calls + 2);
  });

  it('fixed zones need no Intl', () => {
    expect(offsetFnFor('+05:45')(0)).toBe(345);
    expect(offsetFnFor('-0330')(0)).toBe(-210);
    expect(offsetFnFor('UTC')(0)).toBe(0);
  });
});

describe('wall-clock times across changes, through the cache', () => {
  const wall = (iso: string): number => at(`${iso}Z`);
  const cases: readonly [zone: string, wall: string, instant: string][] = [
    // skipped (clocks forward): the offset before the change
    ['Europe/Berlin', '2024-03-31T02:30:00', '2024-03-31T01:30:00.000Z'],
    ['Europe/Berlin', '2024-03-31T01:59:59', '2024-03-31T00:59:59.000Z'],
    ['Europe/Berlin', '2024-03-31T03:00:00', '2024-03-31T01:00:00.000Z'],
    // twice (clocks back): the earlier instant
    ['Europe/Berlin', '2024-10-27T02:30:00', '2024-10-27T00:30:00.000Z'],
    ['Europe/Berlin', '2024-10-27T03:00:00', '2024-10-27T02:00:00.000Z'],
    ['Australia/Lord_Howe', '2024-04-07T01:45:00', '2024-04-06T14:45:00.000Z'],
    ['Australia/Lord_Howe', '2024-10-06T02:15:00', '2024-10-05T15:45:00.000Z'],
    ['Asia/Kathmandu', '1986-01-01T00:10:00', '1985-12-31T18:40:00.000Z'],
    ['Asia/Kathmandu', '1986-01-01T00:15:00', '1985-12-31T18:30:00.000Z'],
    ['Pacific/Chatham', '2024-04-07T03:00:00', '2024-04-06T13:15:00.000Z'],
    // the day Samoa skipped, and the days either side
    ['Pacific/Apia', '2011-12-29T23:00:00', '2011-12-30T09:00:00.000Z'],
    ['Pacific/Apia', '2011-12-30T12:00:00', '2011-12-30T22:00:00.000Z'],
    ['Pacific/Apia', '2011-12-31T00:00:00', '2011-12-30T10:00:00.000Z'],
  ];
  it.each(cases)('%s %s is %s', (zone, w, instant) => {
    expect(new Date(fromWallClock(wall(w), zone)).toISOString()).toBe(instant);
  });

  it('parses and formats the same as before the cache, hour by hour over a year in Berlin', () => {
    const start = at('2024-01-01T00:00:00Z');
    for (let h = 0; h < 366 * 24; h += 7) {
      const ms = start + h * HOUR;
      const text = formatDate(ms, 'DD/MM/YYYY HH:mm', 'Europe/Berlin');
      const back = parseDate(text, 'DD/MM/YYYY HH:mm', 'Europe/Berlin');
      // the same wall time again, except in the repeated hour where the earlier instant wins
      expect(formatDate(back, 'DD/MM/YYYY HH:mm', 'Europe/Berlin')).toBe(text);
      expect(back === ms || back === ms - HOUR).toBe(true);
    }
  });
});
