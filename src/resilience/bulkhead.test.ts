import { describe, expect, it } from 'vitest';
import { Bulkhead } from './bulkhead.js';

describe('Bulkhead', () => {
  it('enter() takes a free slot at once and queues the rest in order; leave() hands the slot on', async () => {
    const b = new Bulkhead(2);
    expect(b.enter()).toBeUndefined();
    expect(b.enter()).toBeUndefined();
    expect(b.executing).toBe(2);
    const order: number[] = [];
    const third = (b.enter() as Promise<void>).then(() => order.push(3));
    const fourth = (b.enter() as Promise<void>).then(() => order.push(4));
    expect(b.waiting).toBe(2);
    b.leave();
    await third;
    expect(order).toEqual([3]);
    expect(b.executing).toBe(2);
    // a newcomer does not slip in ahead of the one still waiting
    expect(b.enter()).toBeInstanceOf(Promise);
    b.leave();
    await fourth;
    expect(order).toEqual([3, 4]);
  });

  it('takes an aborted waiter out of the queue and rejects it with the reason', async () => {
    const b = new Bulkhead(1);
    expect(b.enter()).toBeUndefined();
    const controller = new AbortController();
    const waiting = b.enter(controller.signal) as Promise<void>;
    const other = b.enter() as Promise<void>;
    controller.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    expect(b.waiting).toBe(1);
    b.leave();
    await other;
    expect(b.executing).toBe(1);
    await expect(b.enter(controller.signal) as Promise<void>).rejects.toThrow('stop');
  });

  it('execute() runs through the same slots', async () => {
    const b = new Bulkhead(1);
    let release: () => void = () => undefined;
    const first = b.execute(() => new Promise<number>((r) => (release = () => r(1))));
    const second = b.execute(() => Promise.resolve(2));
    expect(b.executing).toBe(1);
    expect(b.waiting).toBe(1);
    release();
    expect(await Promise.all([first, second])).toEqual([1, 2]);
    expect(b.executing).toBe(0);
  });
});
