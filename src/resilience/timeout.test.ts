import { describe, expect, it } from 'vitest';
import { Deadlines } from './timeout.js';

const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('Deadlines', () => {
  it('aborts an attempt that runs past its deadline, with a TimeoutError, and only that one', async () => {
    const d = new Deadlines(50);
    const slow = d.start();
    const fast = d.start();
    let fired = 0;
    slow.once('abort', () => fired++);
    d.finish(fast);
    await until(() => slow.aborted);
    expect(fired).toBe(1);
    expect(slow.timedOut).toBe(true);
    expect((slow.reason as Error).name).toBe('TimeoutError');
    expect(fast.aborted).toBe(false);
    expect(d.pending).toBe(0);
  });

  it('re-arms for later attempts once the oldest finished, and never aborts a finished one', async () => {
    const d = new Deadlines(60);
    const a = d.start();
    await new Promise((r) => setTimeout(r, 30));
    const b = d.start();
    d.finish(a);
    await until(() => b.aborted);
    expect(a.aborted).toBe(false);
    expect(b.timedOut).toBe(true);
    const c = d.start();
    d.finish(c);
    await new Promise((r) => setTimeout(r, 100));
    expect(c.aborted).toBe(false);
  });

  it('an attempt aborted by its caller is not a timeout', () => {
    const d = new Deadlines(10_000);
    const a = d.start();
    a.abort(new Error('stopping'));
    d.finish(a);
    expect(a.aborted).toBe(true);
    expect(a.timedOut).toBe(false);
    expect(d.pending).toBe(0);
  });

  it('abortUnder aborts the unfinished attempts under one parent signal, and no other', () => {
    const d = new Deadlines(10_000);
    const parent = new AbortController().signal;
    const other = new AbortController().signal;
    const [a, b, c, e] = [d.start(), d.start(), d.start(), d.start()];
    a.parent = parent;
    b.parent = other;
    c.parent = parent;
    e.parent = parent;
    d.finish(e);
    d.abortUnder(parent, new Error('flow stopped'));
    expect([a.aborted, b.aborted, c.aborted, e.aborted]).toEqual([true, false, true, false]);
    expect((a.reason as Error).message).toBe('flow stopped');
    expect(a.timedOut).toBe(false);
    for (const x of [a, b, c]) d.finish(x);
    expect(d.pending).toBe(0);
  });

  it('an attempt calls its abort listeners once, not those removed nor those added after it aborted', () => {
    const d = new Deadlines(10_000);
    const a = d.start();
    const calls: string[] = [];
    const kept = (): void => void calls.push('kept');
    const removed = (): void => void calls.push('removed');
    a.once('abort', kept);
    a.once('abort', removed);
    a.removeListener('abort', removed);
    a.abort(new Error('stop'));
    a.abort(new Error('again'));
    a.on('abort', () => calls.push('late'));
    expect(calls).toEqual(['kept']);
    expect((a.reason as Error).message).toBe('stop');
    d.finish(a);
  });
});
