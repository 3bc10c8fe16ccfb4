import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../testing/fake-clock.js';
import type { StoredMessage } from '../core/message.js';
import type { DurableStore } from '../core/durable.js';
import { replayQueueFor, type Store } from './types.js';

/** Every Store is usable where a component asks for a DurableStore (checked at compile time). */
export const asDurableStore = (store: Store): DurableStore => store;

/** A store under test, made fresh for each test with the given clock. */
export type StoreFactory = (clock: FakeClock) => Promise<Store>;

const msg = (id: string, payload: unknown = { n: id }): StoredMessage => ({ id, payload, headers: {}, meta: {} });

/** The one contract every Store implementation passes (SQLite, PostgreSQL). */
export function storeContract(name: string, factory: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    let clock: FakeClock;
    let store: Store;

    beforeEach(async () => {
      clock = new FakeClock();
      store = await factory(clock);
    });
    afterEach(async () => {
      await store.close();
    });

    it('enqueues, ignores duplicate ids, and claims oldest first', async () => {
      const r = await store.enqueue('q', [{ message: msg('a') }, { message: msg('b') }, { message: msg('a') }]);
      expect(r.inserted).toBe(2);
      expect(r.duplicates).toBe(1);
      expect(r.insertedFlags).toEqual([true, true, false]);
      const claimed = await store.claim('q', 'w1', { limit: 10, leaseMs: 1000 });
      expect(claimed.map((c) => c.message.id)).toEqual(['a', 'b']);
      expect(claimed[0]?.message.payload).toEqual({ n: 'a' });
      expect(claimed[0]?.attempts).toBe(0);
    });

    it('refuses ids enqueued within the dedupe window, even after they were processed', async () => {
      const first = await store.enqueue('q', [{ message: msg('a') }, { message: msg('b') }], { dedupeTtlMs: 10_000 });
      expect(first.insertedFlags).toEqual([true, true]);
      await store.claim('q', 'w', { limit: 10, leaseMs: 1000 });
      await store.complete('q', 'w', ['a', 'b']);
      const again = await store.enqueue('q', [{ message: msg('a') }, { message: msg('c') }], { dedupeTtlMs: 10_000 });
      expect(again.insertedFlags).toEqual([false, true]);
      expect(again.duplicates).toBe(1);
      clock.set(clock.now() + 10_001);
      expect((await store.enqueue('q', [{ message: msg('a') }], { dedupeTtlMs: 10_000 })).inserted).toBe(1);
    });

    it('enqueues leased to the writer: nobody else claims them until the lease expires', async () => {
      await store.enqueue('q', [{ message: msg('old') }]);
      const r = await store.enqueueLeased('q', 'w1', [{ message: msg('a') }, { message: msg('b') }, { message: msg('old') }], { leaseMs: 5000 });
      expect(r.insertedFlags).toEqual([true, true, false]);
      expect(r.duplicates).toBe(1);
      expect(await store.queueStats('q')).toEqual({ ready: 1, scheduled: 0, leased: 2 });
      // the duplicate was not taken over: it is still ready for anyone
      expect((await store.claim('q', 'w2', { limit: 10, leaseMs: 60_000 })).map((c) => c.message.id)).toEqual(['old']);
      expect(await store.extendLease('q', 'w1', ['a', 'b'], 5000)).toEqual(['a', 'b']);
      await store.complete('q', 'w1', ['a']);
      clock.set(clock.now() + 5001);
      // the writer is gone (a crash): b returns to the queue, to its first attempt
      const again = await store.claim('q', 'w2', { limit: 10, leaseMs: 1000 });
      expect(again.map((c) => [c.message.id, c.attempts])).toEqual([['b', 0]]);
      expect(again[0]?.message.payload).toEqual({ n: 'b' });
      await store.complete('q', 'w1', ['b']);
      expect(await store.queueStats('q')).toEqual({ ready: 0, scheduled: 0, leased: 2 });
    });

    it('enqueues leased within the dedupe window, and releases leased items at once', async () => {
      const first = await store.enqueueLeased('q', 'w1', [{ message: msg('a') }], { leaseMs: 60_000, dedupeTtlMs: 10_000 });
      expect(first.insertedFlags).toEqual([true]);
      await store.complete('q', 'w1', ['a']);
      const again = await store.enqueueLeased('q', 'w1', [{ message: msg('a') }, { message: msg('c') }], { leaseMs: 60_000, dedupeTtlMs: 10_000 });
      expect(again.insertedFlags).toEqual([false, true]);
      expect((await store.enqueue('q', [{ message: msg('c') }], { dedupeTtlMs: 10_000 })).inserted).toBe(0);
      await store.release('q', 'w1', ['c']);
      expect((await store.claim('q', 'w2', { limit: 10, leaseMs: 1000 })).map((c) => c.message.id)).toEqual(['c']);
    });

    it('keeps queues apart', async () => {
      await store.enqueue('q1', [{ message: msg('a') }]);
      await store.enqueue('q2', [{ message: msg('a') }]);
      expect((await store.claim('q1', 'w', { limit: 10, leaseMs: 1000 })).length).toBe(1);
      expect((await store.claim('q2', 'w', { limit: 10, leaseMs: 1000 })).length).toBe(1);
    });

    it('gives a leased message to one claimer until its lease expires', async () => {
      await store.enqueue('q', [{ message: msg('a') }]);
      expect((await store.claim('q', 'w1', { limit: 10, leaseMs: 1000 })).length).toBe(1);
      expect((await store.claim('q', 'w2', { limit: 10, leaseMs: 1000 })).length).toBe(0);
      clock.set(clock.now() + 1001);
      const again = await store.claim('q', 'w2', { limit: 10, leaseMs: 1000 });
      expect(again.map((c) => c.message.id)).toEqual(['a']);
      // The first owner lost its lease: its completion does nothing.
      await store.complete('q', 'w1', ['a']);
      expect((await store.queueStats('q')).leased).toBe(1);
      await store.complete('q', 'w2', ['a']);
      expect(await store.queueStats('q')).toEqual({ ready: 0, scheduled: 0, leased: 0 });
    });

    it('respects the claim limit', async () => {
      await store.enqueue('q', ['a', 'b', 'c'].map((id) => ({ message: msg(id) })));
      expect((await store.claim('q', 'w', { limit: 2, leaseMs: 1000 })).map((c) => c.message.id)).toEqual(['a', 'b']);
      expect((await store.claim('q', 'w', { limit: 2, leaseMs: 1000 })).map((c) => c.message.id)).toEqual(['c']);
    });

    it('schedules retries at their time and counts attempts', async () => {
      await store.enqueue('q', [{ message: msg('a') }]);
      await store.claim('q', 'w', { limit: 1, leaseMs: 1000 });
      await store.retry('q', 'w', 'a', { availableAt: clock.now() + 60_000, error: 'HTTP 503' });
      expect(await store.queueStats('q')).toEqual({ ready: 0, scheduled: 1, leased: 0 });
      expect(await store.nextAvailableAt('q')).toBe(clock.now() + 60_000);
      expect((await store.claim('q', 'w', { limit: 1, leaseMs: 1000 })).length).toBe(0);
      clock.set(clock.now() + 60_000);
      const [item] = await store.claim('q', 'w', { limit: 1, leaseMs: 1000 });
      expect(item?.attempts).toBe(1);
      expect(item?.lastError).toBe('HTTP 503');
    });

    it('defers without counting an attempt when told', async () => {
      await store.enqueue('q', [{ message: msg('a') }]);
      await store.claim('q', 'w', { limit: 1, leaseMs: 1000 });
      await store.retry('q', 'w', 'a', { availableAt: clock.now() + 1000, countAttempt: false });
      expect((await store.claim('q', 'w', { limit: 1, leaseMs: 1000 })).length).toBe(0);
      clock.set(clock.now() + 1000);
      const [item] = await store.claim('q', 'w', { limit: 1, leaseMs: 1000 });
      expect(item?.attempts).toBe(0);
    });

    it('enqueues for later with availableAt', async () => {
      await store.enqueue('q', [{ message: msg('later'), availableAt: clock.now() + 5000 }, { message: msg('now') }]);
      expect((await store.claim('q', 'w', { limit: 10, leaseMs: 1000 })).map((c) => c.message.id)).toEqual(['now']);
      await store.complete('q', 'w', ['now']);
      clock.set(clock.now() + 5000);
      expect((await store.claim('q', 'w', { limit: 10, leaseMs: 1000 })).map((c) => c.message.id)).toEqual(['later']);
    });

    it('releases without counting an attempt', async () => {
      await store.enqueue('q', [{ message: msg('a') }]);
      await store.claim('q', 'w', { limit: 1, leaseMs: 60_000 });
      await store.release('q', 'w', ['a']);
      const [item] = await store.claim('q', 'w2', { limit: 1, leaseMs: 1000 });
      expect(item?.attempts).toBe(0);
    });

    it('extends only the leases the owner still holds', async () => {
      await store.enqueue('q', [{ message: msg('a') }, { message: msg('b') }]);
      await store.claim('q', 'w', { limit: 2, leaseMs: 1000 });
      clock.set(clock.now() + 500);
      expect(await store.extendLease('q', 'w', ['a', 'b'], 1000)).toEqual(['a', 'b']);
      clock.set(clock.now() + 900);
      expect((await store.claim('q', 'x', { limit: 2, leaseMs: 1000 })).length).toBe(0);
      clock.set(clock.now() + 200);
      expect(await store.extendLease('q', 'w', ['a'], 1000)).toEqual([]);
    });

    it('stores checkpoints', async () => {
      expect(await store.getCheckpoint('flow/source')).toBeUndefined();
      await store.setCheckpoint('flow/source', '{"offset":10}');
      await store.setCheckpoint('flow/source', '{"offset":20}');
      expect(await store.getCheckpoint('flow/source')).toBe('{"offset":20}');
      await store.deleteCheckpoint('flow/source');
      expect(await store.getCheckpoint('flow/source')).toBeUndefined();
    });

    it('remembers idempotency keys for their window', async () => {
      expect(await store.remember('s', ['k1', 'k2'], 1000)).toEqual([true, true]);
      expect(await store.remember('s', ['k1', 'k3'], 1000)).toEqual([false, true]);
      expect(await store.seen('s', ['k1', 'k4'])).toEqual([true, false]);
      expect(await store.seen('other', ['k1'])).toEqual([false]);
      clock.set(clock.now() + 1001);
      expect(await store.seen('s', ['k1'])).toEqual([false]);
      expect(await store.remember('s', ['k1'], 1000)).toEqual([true]);
      clock.set(clock.now() + 5000);
      expect(await store.purgeExpired()).toBe(3);
    });

    it('spaces a rate limit evenly and never refuses a call', async () => {
      const limit = { count: 10, perMs: 1000 };
      const waits: number[] = [];
      for (let i = 0; i < 5; i++) waits.push(await store.acquireRate('api', limit));
      expect(waits).toEqual([0, 100, 200, 300, 400]);
      expect(await store.acquireRate('other', limit)).toBe(0);
      clock.set(clock.now() + 10_000);
      expect(await store.acquireRate('api', limit)).toBe(0);
    });

    it('lets a burst through after a quiet spell, then spaces', async () => {
      const limit = { count: 10, perMs: 1000, burst: 3 };
      const waits: number[] = [];
      for (let i = 0; i < 5; i++) waits.push(await store.acquireRate('b', limit));
      expect(waits).toEqual([0, 0, 0, 100, 200]);
    });

    it('gives a lease to one owner until it expires or is released', async () => {
      expect(await store.acquireLease('schedule:x', 'a', 1000)).toBe(true);
      expect(await store.acquireLease('schedule:x', 'b', 1000)).toBe(false);
      expect(await store.acquireLease('schedule:x', 'a', 1000)).toBe(true);
      clock.set(clock.now() + 1001);
      expect(await store.acquireLease('schedule:x', 'b', 1000)).toBe(true);
      expect(await store.acquireLease('schedule:x', 'a', 1000)).toBe(false);
      await store.releaseLease('schedule:x', 'b');
      expect(await store.acquireLease('schedule:x', 'a', 1000)).toBe(true);
    });

    it('keeps dead letters with their reason, lists, counts and deletes them', async () => {
      await store.deadLetter([
        { flow: 'f', message: msg('a'), stage: 'sink:file', reason: 'disk full', attempts: 5 },
        { flow: 'g', message: msg('b'), failed: msg('b', { mapped: true }), stage: 'step:map', reason: 'bad date', attempts: 1 },
      ]);
      expect(await store.countDeadLetters()).toBe(2);
      expect(await store.countDeadLetters('f')).toBe(1);
      const all = await store.listDeadLetters();
      expect(all.map((d) => d.message.id)).toEqual(['a', 'b']);
      const g = await store.listDeadLetters({ flow: 'g' });
      expect(g[0]?.failed?.payload).toEqual({ mapped: true });
      expect(g[0]?.reason).toBe('bad date');
      const one = await store.getDeadLetter(all[0]?.id as number);
      expect(one?.attempts).toBe(5);
      expect(one?.createdAt).toBe(clock.now());
      expect((await store.listDeadLetters({ afterId: all[0]?.id as number })).length).toBe(1);
      expect(await store.deleteDeadLetters([all[0]?.id as number])).toBe(1);
      expect(await store.countDeadLetters()).toBe(1);
    });

    it('replays dead letters into a queue atomically', async () => {
      await store.deadLetter([{ flow: 'f', message: msg('a'), stage: 'sink:x', reason: 'r', attempts: 3 }]);
      const [d] = await store.listDeadLetters();
      const moved = await store.replayDeadLetters([d?.id as number, 999_999], (e) => `inbox:${e.flow}`);
      expect(moved).toEqual([d?.id]);
      expect(await store.countDeadLetters()).toBe(0);
      const [item] = await store.claim('inbox:f', 'w', { limit: 10, leaseMs: 1000 });
      expect(item?.message).toEqual(msg('a'));
    });

    it('replays a dead letter into its own replay queue when it names one', async () => {
      await store.deadLetter([
        { flow: 'f', message: msg('a'), stage: 'sink:webhook', reason: 'HTTP 500', attempts: 6, replayQueue: 'outbox:f:hook' },
        { flow: 'f', message: msg('b'), stage: 'step:map', reason: 'r', attempts: 1 },
      ]);
      const [a, b] = await store.listDeadLetters();
      expect(a?.replayQueue).toBe('outbox:f:hook');
      expect(b?.replayQueue).toBeUndefined();
      expect(replayQueueFor(a as never)).toBe('outbox:f:hook');
      expect(replayQueueFor(b as never)).toBe('inbox:f');
      await store.replayDeadLetters([a?.id as number, b?.id as number], replayQueueFor);
      expect((await store.claim('outbox:f:hook', 'w', { limit: 10, leaseMs: 1000 })).map((c) => c.message.id)).toEqual(['a']);
      expect((await store.claim('inbox:f', 'w', { limit: 10, leaseMs: 1000 })).map((c) => c.message.id)).toEqual(['b']);
    });

    it('records delivery attempts, lists them by message, flow and page, and purges old ones', async () => {
      const t = clock.now();
      await store.recordDeliveryAttempts([
        { flow: 'f', outbox: 'o1', messageId: 'm1', attempt: 1, url: 'https://x/h', at: t, status: 503, latencyMs: 12.4, outcome: 'retry', responseExcerpt: 'busy', nextAt: t + 60_000 },
        { flow: 'f', outbox: 'o1', messageId: 'm1', attempt: 2, url: 'https://x/h', at: t + 60_000, status: 200, latencyMs: 8, outcome: 'delivered' },
        { flow: 'g', outbox: 'o2', messageId: 'm2', attempt: 1, url: 'https://y/h', at: t + 1, latencyMs: 15_000, outcome: 'retry', error: 'timeout' },
      ]);
      const m1 = await store.listDeliveryAttempts({ outbox: 'o1', messageId: 'm1' });
      expect(m1.map((a) => [a.attempt, a.status, a.outcome])).toEqual([
        [1, 503, 'retry'],
        [2, 200, 'delivered'],
      ]);
      expect(m1[0]).toMatchObject({ latencyMs: 12, responseExcerpt: 'busy', nextAt: t + 60_000, url: 'https://x/h' });
      const g = await store.listDeliveryAttempts({ flow: 'g' });
      expect(g).toHaveLength(1);
      expect(g[0]?.status).toBeUndefined();
      expect(g[0]?.error).toBe('timeout');
      const page = await store.listDeliveryAttempts({ limit: 1 });
      expect(page).toHaveLength(1);
      expect((await store.listDeliveryAttempts({ afterId: page[0]?.id as number })).length).toBe(2);
      expect(await store.purgeDeliveryAttempts(t + 2, 'o2')).toBe(1);
      expect(await store.purgeDeliveryAttempts(t + 2)).toBe(1);
      expect((await store.listDeliveryAttempts()).map((a) => a.messageId)).toEqual(['m1']);
    });

    it('records delivery attempts and completes the delivered items with them, under the lease only', async () => {
      await store.enqueue('outbox:f:rec', [{ message: msg('d1') }, { message: msg('d2') }, { message: msg('d3') }]);
      const claimed = await store.claim('outbox:f:rec', 'w1', { limit: 2, leaseMs: 60_000 });
      expect(claimed.map((c) => c.message.id)).toEqual(['d1', 'd2']);
      const at = clock.now();
      const attempt = (id: string) => ({ flow: 'f', outbox: 'outbox:f:rec', messageId: id, attempt: 1, url: 'https://x/h', at, status: 204, latencyMs: 3, outcome: 'delivered' as const });
      // d3 is not leased by w1, so it stays; another owner's id does not complete anything
      await store.recordDeliveryAttempts([attempt('d1'), attempt('d2')], { queue: 'outbox:f:rec', owner: 'w1', ids: ['d1', 'd2', 'd3'] });
      expect((await store.listDeliveryAttempts({ outbox: 'outbox:f:rec' })).map((a) => a.messageId)).toEqual(['d1', 'd2']);
      expect(await store.queueStats('outbox:f:rec')).toEqual({ ready: 1, scheduled: 0, leased: 0 });
      expect((await store.claim('outbox:f:rec', 'w2', { limit: 10, leaseMs: 60_000 })).map((c) => c.message.id)).toEqual(['d3']);
    });
  });
}
