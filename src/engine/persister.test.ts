import { describe, expect, it } from 'vitest';
import { createMessage } from '../core/message.js';
import type { EnqueueItem, EnqueueResult, Store } from '../store/types.js';
import { Persister } from './persister.js';

/** A store whose enqueues resolve when the test says (a slow fsync). */
function slowStore() {
  const calls: { queue: string; ids: string[]; release: () => void }[] = [];
  const store = {
    enqueue(queue: string, items: readonly EnqueueItem[]): Promise<EnqueueResult> {
      return new Promise((resolve) => {
        calls.push({ queue, ids: items.map((i) => i.message.id), release: () => resolve({ inserted: items.length, duplicates: 0, insertedFlags: items.map(() => true) }) });
      });
    },
  } as unknown as Store;
  return { store, calls };
}

const until = async (cond: () => boolean): Promise<void> => {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 1));
  }
};

describe('Persister', () => {
  it('commits the calls made while a group commits as the next group, in one enqueue, and answers each after its own group', async () => {
    const { store, calls } = slowStore();
    const p = new Persister(store);
    const first = p.persist('inbox:f', [createMessage({ id: 'a', payload: 1 })]);
    await until(() => calls.length === 1);
    let laterDone = 0;
    const later = ['b', 'c', 'd'].map((id) => p.persist('inbox:f', [createMessage({ id, payload: 1 })]).then((r) => (laterDone++, r)));
    await new Promise((r) => setTimeout(r, 20));
    expect(calls).toHaveLength(1); // nothing more while the first group is committing
    expect(laterDone).toBe(0);
    calls[0]?.release();
    expect((await first).accepted).toBe(1);
    await until(() => calls.length === 2);
    expect(calls[1]?.ids).toEqual(['b', 'c', 'd']);
    expect(laterDone).toBe(0); // not answered before their own commit
    calls[1]?.release();
    expect((await Promise.all(later)).map((r) => r.persisted)).toEqual([[true], [true], [true]]);
  });
});
