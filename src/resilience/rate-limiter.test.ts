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

describe('BlockRateGate.tryAcquireRate', () => {
  it('hands out the leased block’s slots without the store, and nothing once the block is used up', async () => {
    const clock = new FakeClock(0);
    const shared = countingGate(new MemoryRateGate(clock));
    const gate = new BlockRateGate(shared, clock, 100);
    const limit = { count: 100, perMs: 1000 }; // 10 slots of 10 ms per block
    expect(gate.tryAcquireRate('k', limit)).toBeUndefined(); // no block leased yet
    expect(await gate.acquireRate('k', limit)).toBe(0);
    expect(shared.calls).toBe(1);
    const waits = Array.from({ length: 9 }, () => gate.tryAcquireRate('k', limit));
    expect(waits).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90]);
    expect(gate.tryAcquireRate('k', limit)).toBeUndefined(); // the next call leases a block
    expect(shared.calls).toBe(1);
    // limits reserved per call never take the synchronous path
    expect(gate.tryAcquireRate('slow', { count: 1, perMs: 1000 })).toBeUndefined();
    expect(gate.tryAcquireRate('burst', { count: 100, perMs: 1000, burst: 5 })).toBeUndefined();
  });
});

describe('SendLog', () => {
  it('admits a send that may go now synchronously, and one that may not with a promise', async () => {
    const clock = new FakeClock(0);
    const log = new SendLog(clock);
    const limit = { count: 2, perMs: 1000 };
    expect(log.admit('k', limit)).toBeUndefined();
    expect(log.admit('k', limit)).toBeUndefined();
    const third = log.admit('k', limit);
    expect(third).toBeInstanceOf(Promise);
    let done = false;
    void third?.then(() => (done = true));
    await clock.advance(999);
    expect(done).toBe(false);
    await clock.advance(1);
    await third;
    expect(clock.now()).toBe(1000);
  });

  it('never admits more than `count` sends in any window of `perMs`, however the callers bunch up', async () => {
    const clock = new FakeClock();
    const log = new SendLog(clock);
    const limit = { count: 5, perMs: 1000 };
    const admitted: number[] = [];
    // 12 callers at once (a stalled event loop waking them together)
    const all = Array.from({ length: 12 }, () => Promise.resolve(log.admit('k', limit)).then(() => admitted.push(clock.now())));
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

  it('takes every waiter under an aborted signal out with one listener, and only those', async () => {
    const bulkhead = new Bulkhead(1);
    const order: number[] = [];
    let release: () => void = () => undefined;
    const task = (n: number) => () =>
      new Promise<number>((resolve) => {
        order.push(n);
        release = () => resolve(n);
      });
    const flow = new AbortController();
    const other = new AbortController();
    let listeners = 0;
    const add = flow.signal.addEventListener.bind(flow.signal);
    flow.signal.addEventListener = ((...args: Parameters<typeof add>) => {
      listeners++;
      add(...args);
    }) as typeof add;
    const first = bulkhead.execute(task(1), other.signal);
    const waiting = [2, 3, 4, 5].map((n) => bulkhead.execute(task(n), n % 2 === 0 ? flow.signal : other.signal));
    expect(bulkhead.waiting).toBe(4);
    expect(listeners).toBe(1);
    flow.abort(new Error('flow stopped'));
    await expect(waiting[0]).rejects.toThrow('flow stopped');
    await expect(waiting[2]).rejects.toThrow('flow stopped');
    expect(bulkhead.waiting).toBe(2);
    release();
    expect(await first).toBe(1);
    await new Promise((r) => setImmediate(r));
    release();
    expect(await waiting[1]).toBe(3);
    await new Promise((r) => setImmediate(r));
    release();
    expect(await waiting[3]).toBe(5);
    expect(order).toEqual([1, 3, 5]);
  });
});
