import { describe, expect, it } from 'vitest';
import { FakeClock } from '../testing/fake-clock.js';
import { Bulkhead } from './bulkhead.js';
import { BlockRateGate, MemoryRateGate, SendLog, type RateGate, type RateSpec } from './rate-limiter.js';

/** A shared gate that counts how often it is asked (a store round trip each). */
function countingGate(inner: RateGate): RateGate & { calls: number } {
  const g = {
    calls: 0,
    acquireRate(key: string, limit: RateSpec): Promise<number> {
      g.calls++;
      return inner.acquireRate(key, limit);
    },
  };
  return g;
}

/** Send times of `n` calls through `gate` that each wait their turn, on a fake clock. */
async function sendTimes(gate: RateGate, clock: FakeClock, n: number, limit: RateSpec): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const wait = await gate.acquireRate('k', limit);
    if (wait > 0) await clock.advance(wait);
    times.push(clock.now());
  }
  return times;
}

describe('BlockRateGate', () => {
  it('reserves a block of slots per store round trip and spaces calls evenly inside it', async () => {
    const clock = new FakeClock();
    const shared = countingGate(new MemoryRateGate(clock));
    const gate = new BlockRateGate(shared, clock, 200);
    const start = clock.now();
    const times = await sendTimes(gate, clock, 100, { count: 50, perMs: 1000 }); // one per 20 ms, 10 per block
    expect(shared.calls).toBe(10);
    times.forEach((t, i) => expect(t - start).toBe(i * 20));
  });

  it('lets unused time lapse instead of bunching calls after a quiet spell', async () => {
    const clock = new FakeClock();
    const gate = new BlockRateGate(new MemoryRateGate(clock), clock, 200);
    await sendTimes(gate, clock, 2, { count: 50, perMs: 1000 });
    await clock.advance(150); // most of the block unused
    const times = await sendTimes(gate, clock, 5, { count: 50, perMs: 1000 });
    for (let i = 1; i < times.length; i++) expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(20);
  });

  it('schedules a second process after the first one’s block on the same store', async () => {
    const clock = new FakeClock();
    const store = new MemoryRateGate(clock);
    const a = new BlockRateGate(store, clock, 200);
    const b = new BlockRateGate(store, clock, 200);
    const limit = { count: 50, perMs: 1000 };
    expect(await a.acquireRate('k', limit)).toBe(0);
    expect(await b.acquireRate('k', limit)).toBe(200);
  });

  it('reserves per call when a block would hold fewer than two calls or the limit has a burst', async () => {
    const clock = new FakeClock();
    const shared = countingGate(new MemoryRateGate(clock));
    const gate = new BlockRateGate(shared, clock, 200);
    await sendTimes(gate, clock, 3, { count: 2, perMs: 1000 });
    await sendTimes(gate, clock, 3, { count: 100, perMs: 1000, burst: 5 });
    expect(shared.calls).toBe(6);
  });
});

describe('SendLog', () => {
  it('never admits more than `count` sends in any window of `perMs`, however the callers bunch up', async () => {
    const clock = new FakeClock();
    const log = new SendLog(clock);
    const limit = { count: 5, perMs: 1000 };
    const admitted: number[] = [];
    // 12 callers at once (a stalled event loop waking them together)
    const all = Array.from({ length: 12 }, () => log.admit('k', limit).then(() => admitted.push(clock.now())));
    for (let i = 0; i < 50 && admitted.length < 12; i++) {
      await new Promise((r) => setImmediate(r));
      if (clock.pending > 0) await clock.advance((clock.nextAt() as number) - clock.now());
    }
    await Promise.all(all);
    expect(admitted).toHaveLength(12);
    for (let i = 5; i < admitted.length; i++) expect((admitted[i] as number) - (admitted[i - 5] as number)).toBeGreaterThanOrEqual(1000);
  });
});

describe('Bulkhead', () => {
  it('runs at most maxConcurrent at once, the rest in arrival order, and drops aborted waiters', async () => {
    const bulkhead = new Bulkhead(2);
    const order: number[] = [];
    const gates: (() => void)[] = [];
    const task = (n: number) => () =>
      new Promise<number>((resolve) => {
        order.push(n);
        gates.push(() => resolve(n));
      });
    const aborted = new AbortController();
    const calls = [bulkhead.execute(task(1)), bulkhead.execute(task(2)), bulkhead.execute(task(3), aborted.signal), bulkhead.execute(task(4))];
    await Promise.resolve();
    expect([bulkhead.executing, bulkhead.waiting]).toEqual([2, 2]);
    aborted.abort(new Error('stop'));
    await expect(calls[2]).rejects.toThrow('stop');
    gates.shift()?.();
    await calls[0];
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(order).toEqual([1, 2, 4]);
    expect(bulkhead.executing).toBe(2);
    for (const g of gates.splice(0)) g();
    expect(await Promise.all([calls[1], calls[3]])).toEqual([2, 4]);
    expect(bulkhead.executing).toBe(0);
  });
});
