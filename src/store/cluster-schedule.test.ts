import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../testing/fake-clock.js';
import { runClusterSchedule } from './cluster-schedule.js';
import { SqliteStore } from './sqlite/sqlite-store.js';

const dir = mkdtempSync(join(tmpdir(), 'ix-schedule-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('runClusterSchedule', () => {
  it('fires each tick once across candidates, and a follower takes over when the leader stops', async () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 1, 0, 0, 0, 500));
    const store = new SqliteStore(join(dir, 's.db'), { clock });
    const fired: [number, string][] = [];
    const stops = ['a', 'b', 'c'].map(() => new AbortController());
    const runs = ['a', 'b', 'c'].map((owner, i) =>
      runClusterSchedule(store, {
        name: 'f',
        owner,
        everyMs: 1000,
        clock,
        signal: (stops[i] as AbortController).signal,
        onTick: (slot) => {
          fired.push([slot, owner]);
        },
      }),
    );
    await clock.advance(5000);
    expect(fired.length).toBe(5);
    const leader = (fired[0] as [number, string])[1];
    expect(new Set(fired.map(([, o]) => o))).toEqual(new Set([leader]));
    // The leader goes away without releasing (as if killed: its lease stays until it passes).
    const li = ['a', 'b', 'c'].indexOf(leader);
    stops[li]?.abort();
    await runs[li];
    // It renewed at its last tick (5.0 s) for everyMs + grace = 1.5 s: the lease runs until 6.5 s.
    await store.acquireLease('schedule:f', leader, 1000);
    await clock.advance(5000);
    const slots = fired.map(([s]) => s);
    expect(slots.length).toBe(10);
    expect(new Set(slots).size).toBe(10);
    expect(slots[9]! - slots[0]!).toBe(9); // consecutive: no tick lost in the failover
    expect(fired.slice(5).every(([, o]) => o !== leader)).toBe(true);
    for (const s of stops) s.abort();
    await Promise.all(runs);
    await store.close();
  });
});
