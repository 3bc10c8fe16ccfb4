import { describe, expect, it } from 'vitest';
import { CompleteGroup } from './complete-group.js';

describe('CompleteGroup', () => {
  it('commits the batches that settle within the wait as one group, and resolves each batch after it', async () => {
    const commits: string[][] = [];
    const group = new CompleteGroup(async (ids) => {
      commits.push(ids);
    }, 100, 30);
    const a = group.add(['a1', 'a2']);
    const b = group.add(['b1']);
    expect(commits).toEqual([]);
    await Promise.all([a, b]);
    expect(commits).toEqual([['a1', 'a2', 'b1']]);
  });

  it('commits at once when the group is full, without waiting for the timer', async () => {
    const commits: string[][] = [];
    const group = new CompleteGroup(async (ids) => {
      commits.push(ids);
    }, 3, 60_000);
    const t0 = Date.now();
    await Promise.all([group.add(['a', 'b']), group.add(['c'])]);
    expect(commits).toEqual([['a', 'b', 'c']]);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('commits on flush (at stop), and tells every waiter of a failed group', async () => {
    let fail = true;
    const commits: string[][] = [];
    const group = new CompleteGroup((ids) => {
      if (fail) throw new Error('store closed');
      commits.push(ids);
      return Promise.resolve();
    }, 100, 60_000);
    const a = group.add(['a']);
    const b = group.add(['b']);
    group.flush();
    await expect(a).rejects.toThrow('store closed');
    await expect(b).rejects.toThrow('store closed');
    fail = false;
    const c = group.add(['c']);
    group.flush();
    await c;
    expect(commits).toEqual([['c']]);
    group.flush(); // nothing waits: no empty commit
    expect(commits).toEqual([['c']]);
  });
});
