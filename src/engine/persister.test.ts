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

describe('Persister hand-over to a local consumer', () => {
  const open = async () => {
    const { SqliteStore } = await import('../store/sqlite/sqlite-store.js');
    return new SqliteStore(':memory:');
  };

  it('writes the new messages leased to the consumer and hands over only those inserted', async () => {
    const store = await open();
    const p = new Persister(store);
    const taken: string[][] = [];
    p.handoffTo('inbox:f', { owner: 'me', leaseMs: 60_000, room: () => 100, take: (ms) => taken.push(ms.map((m) => m.id)) });
    await store.enqueue('inbox:f', [{ message: { id: 'old', payload: 0, headers: {}, meta: {} } }]);
    const r = await p.persist('inbox:f', ['a', 'old', 'b'].map((id) => createMessage({ id, payload: 1 })), {}, true);
    expect(r.persisted).toEqual([true, false, true]);
    await until(() => taken.length === 1);
    expect(taken[0]).toEqual(['a', 'b']);
    // leased to the consumer: a claim gets only the message that was already there
    expect((await store.claim('inbox:f', 'other', { limit: 10, leaseMs: 1000 })).map((i) => i.message.id)).toEqual(['old']);
    expect(await store.queueStats('inbox:f')).toMatchObject({ ready: 0, leased: 3 });
    await store.close();
  });

  it('enqueues for claiming when the consumer has no room, or when the caller did not ask for a hand-over', async () => {
    const store = await open();
    const p = new Persister(store);
    const taken: string[] = [];
    let room = 1;
    let woken = 0;
    p.onEnqueued('inbox:f', () => woken++);
    p.handoffTo('inbox:f', { owner: 'me', leaseMs: 60_000, room: () => room, take: (ms) => taken.push(...ms.map((m) => m.id)) });
    await p.persist('inbox:f', ['a', 'b'].map((id) => createMessage({ id, payload: 1 })), {}, true); // 2 > room 1
    room = 10;
    await p.persist('inbox:f', [createMessage({ id: 'c', payload: 1 })]); // no hand-over asked (a step's forward)
    await p.persist('inbox:f', [createMessage({ id: 'd', payload: 1 })], {}, true);
    expect(taken).toEqual(['d']);
    expect(woken).toBe(2);
    expect((await store.claim('inbox:f', 'other', { limit: 10, leaseMs: 1000 })).map((i) => i.message.id)).toEqual(['a', 'b', 'c']);
    p.handoffTo('inbox:f', undefined);
    await p.persist('inbox:f', [createMessage({ id: 'e', payload: 1 })], {}, true);
    expect(taken).toEqual(['d']);
    expect((await store.claim('inbox:f', 'other', { limit: 10, leaseMs: 1000 })).map((i) => i.message.id)).toEqual(['e']);
    await store.close();
  });
});

describe('Persister: a payload that is text in the message meta', () => {
  const from = { meta: ['webhook', 'raw'], as: 'json' } as const;
  const raw = '{"total":42.5}';
  const stored = async (kind: string) => {
    const seen: EnqueueItem[] = [];
    const store = {
      kind,
      enqueue(_queue: string, items: readonly EnqueueItem[]): Promise<EnqueueResult> {
        seen.push(...items);
        return Promise.resolve({ inserted: items.length, duplicates: 0, insertedFlags: items.map(() => true) });
      },
    } as unknown as Store;
    await new Persister(store).persist('inbox:f', [createMessage({ id: 'a', payload: JSON.parse(raw), meta: { webhook: { raw } } })], { payloadFrom: from });
    return seen[0]?.message;
  };

  it('is stored once on SQLite (the schema version keeps an older engine out)', async () => {
    const m = await stored('sqlite');
    expect(m?.payload).toBeUndefined();
    expect(m?.payloadFrom).toEqual(from);
  });

  it('is stored whole on PostgreSQL, where an older worker of a rolling upgrade may claim it', async () => {
    const m = await stored('postgres');
    expect(m?.payload).toEqual({ total: 42.5 });
    expect(m?.payloadFrom).toBeUndefined();
  });
});
