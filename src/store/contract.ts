import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../testing/fake-clock.js';
import type { StoredMessage } from '../core/message.js';
import type { DurableStore } from '../core/durable.js';
import { replayQueueFor, type RetryOptions, type Store } from './types.js';

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

    it('refuses a duplicate while the first is in flight, once it was dead-lettered or delivered, for the window counted from its enqueue', async () => {
      const t0 = clock.now();
      await store.enqueue('q', [{ message: msg('a') }], { dedupeTtlMs: 10_000 });
      await store.claim('q', 'w', { limit: 10, leaseMs: 60_000 });
      clock.set(t0 + 4000);
      expect((await store.enqueue('q', [{ message: msg('a') }], { dedupeTtlMs: 10_000 })).insertedFlags).toEqual([false]);
      await store.complete('q', 'w', ['a']);
      expect((await store.enqueueLeased('q', 'w', [{ message: msg('a') }], { leaseMs: 1000, dedupeTtlMs: 10_000 })).insertedFlags).toEqual([false]);
      clock.set(t0 + 10_001);
      expect((await store.enqueue('q', [{ message: msg('a') }], { dedupeTtlMs: 10_000 })).insertedFlags).toEqual([true]);

      await store.enqueueLeased('q', 'w', [{ message: msg('dead') }, { message: msg('sent') }], { leaseMs: 60_000, dedupeTtlMs: 10_000 });
      await store.deadLetter([{ flow: 'f', message: msg('dead'), stage: 'sink', reason: 'HTTP 400', attempts: 1 }]);
      await store.complete('q', 'w', ['dead']);
      await store.recordDeliveryAttempts([], { queue: 'q', owner: 'w', ids: ['sent'] });
      expect(await store.queueStats('q')).toEqual({ ready: 1, scheduled: 0, leased: 0 });
      expect((await store.enqueue('q', [{ message: msg('dead') }, { message: msg('sent') }, { message: msg('new') }], { dedupeTtlMs: 10_000 })).insertedFlags).toEqual([false, false, true]);
      // a completion by someone who no longer holds the item neither removes it nor remembers it early
      await store.enqueueLeased('q', 'w', [{ message: msg('held') }], { leaseMs: 60_000, dedupeTtlMs: 1000 });
      await store.complete('q', 'other', ['held']);
      clock.set(clock.now() + 1001);
      expect((await store.enqueue('q', [{ message: msg('held') }], { dedupeTtlMs: 1000 })).insertedFlags).toEqual([false]);
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

    /** Claims the one message of `queue` and gives it back with `options`; returns its delay from now. */
    const retryIn = async (queue: string, id: string, options: RetryOptions): Promise<number> => {
      const claimed = await store.claim(queue, 'w', { limit: 1, leaseMs: 1000 });
      expect(claimed.map((c) => c.message.id)).toEqual([id]);
      await store.retry(queue, 'w', id, options);
      return ((await store.nextAvailableAt(queue)) as number) - clock.now();
    };
    /** Counts `n` failed attempts of the message, each due again at once. */
    const failTimes = async (queue: string, id: string, n: number): Promise<void> => {
      for (let i = 0; i < n; i++) await retryIn(queue, id, { availableAt: clock.now() });
    };

    it('computes the next time of a backoff retry from the row\'s attempts: exponential, capped, exact without jitter', async () => {
      const backoff = { kind: 'exponential', initialMs: 1000, maxMs: 10_000, jitter: false } as const;
      await store.enqueue('q', [{ message: msg('a') }]);
      const delays: number[] = [];
      for (let i = 0; i < 6; i++) {
        delays.push(await retryIn('q', 'a', { backoff, error: `failure ${i + 1}` }));
        clock.set(clock.now() + delays[i]!);
      }
      // retry n waits min(max, initial·2^(n-1)): 1 s, 2 s, 4 s, 8 s, then the 10 s cap
      expect(delays).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
      const [item] = await store.claim('q', 'w', { limit: 1, leaseMs: 1000 });
      expect(item?.attempts).toBe(6);
      expect(item?.lastError).toBe('failure 6');
    });

    it('computes a backoff retry from the attempts the store counted, whoever gives the message back', async () => {
      await store.enqueue('q', [{ message: msg('a') }]);
      await failTimes('q', 'a', 3);
      // a worker that knows nothing of the earlier attempts still waits the 4th retry's time
      const [held] = await store.claim('q', 'other', { limit: 1, leaseMs: 1000 });
      expect(held?.attempts).toBe(3);
      await store.retry('q', 'other', 'a', { backoff: { kind: 'exponential', initialMs: 500, maxMs: 60_000, jitter: false } });
      expect(await store.nextAvailableAt('q')).toBe(clock.now() + 4000);
      // only the lease holder gives it back
      await store.retry('q', 'w', 'a', { backoff: { kind: 'exponential', initialMs: 1, maxMs: 1, jitter: false } });
      expect(await store.nextAvailableAt('q')).toBe(clock.now() + 4000);
    });

    it('keeps a fixed backoff at its initial delay, bounded by max', async () => {
      await store.enqueue('q', [{ message: msg('a') }]);
      const fixed = { kind: 'fixed', initialMs: 3000, maxMs: 60_000, jitter: false } as const;
      expect(await retryIn('q', 'a', { backoff: fixed })).toBe(3000);
      clock.set(clock.now() + 3000);
      expect(await retryIn('q', 'a', { backoff: fixed })).toBe(3000);
      clock.set(clock.now() + 3000);
      expect(await retryIn('q', 'a', { backoff: { ...fixed, maxMs: 2000 } })).toBe(2000);
    });

    it('takes the backoff retry time from the injected clock', async () => {
      const far = Date.UTC(2031, 5, 1, 12);
      clock.set(far);
      await store.enqueue('q', [{ message: msg('a') }]);
      const delay = await retryIn('q', 'a', { backoff: { kind: 'exponential', initialMs: 250, maxMs: 1000, jitter: false } });
      expect(delay).toBe(250);
      expect(await store.nextAvailableAt('q')).toBe(far + 250);
      expect(await store.queueStats('q')).toEqual({ ready: 0, scheduled: 1, leased: 0 });
      clock.set(far + 249);
      expect(await store.claim('q', 'w', { limit: 1, leaseMs: 1000 })).toEqual([]);
      clock.set(far + 250);
      expect((await store.claim('q', 'w', { limit: 1, leaseMs: 1000 })).map((c) => c.attempts)).toEqual([1]);
    });

    it('draws a full-jitter backoff in [0, min(max, initial·2^attempts)]: random, and growing with the attempts', async () => {
      const backoff = { kind: 'exponential', initialMs: 1000, maxMs: 20_000, jitter: true } as const;
      const N = 40;
      /** The delays of N messages (one queue each) retried with `backoff` after `before` failed attempts. */
      const draw = async (before: number): Promise<number[]> => {
        const out: number[] = [];
        for (let i = 0; i < N; i++) {
          const queue = `j${before}-${i}`;
          await store.enqueue(queue, [{ message: msg('a') }]);
          await failTimes(queue, 'a', before);
          out.push(await retryIn(queue, 'a', { backoff }));
        }
        return out;
      };
      const first = await draw(0);
      const fourth = await draw(3);
      const capped = await draw(6);
      for (const [delays, ceiling] of [
        [first, 1000],
        [fourth, 8000],
        [capped, 20_000],
      ] as const) {
        for (const d of delays) {
          expect(Number.isInteger(d)).toBe(true);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThanOrEqual(ceiling);
        }
        // a draw, not the ceiling every time (40 equal uniform draws: practically never)
        expect(new Set(delays).size).toBeGreaterThan(1);
      }
      // the ceiling grew: 40 draws in [0, 8 s] all below 1 s has odds of (1/8)^40
      expect(Math.max(...fourth)).toBeGreaterThan(1000);
      expect(Math.max(...capped)).toBeGreaterThan(8000);
      const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
      expect(mean(first)).toBeLessThan(mean(fourth));
      expect(mean(fourth)).toBeLessThan(mean(capped));
    });

    it('defers with a backoff without counting an attempt when told', async () => {
      await store.enqueue('q', [{ message: msg('a') }]);
      await failTimes('q', 'a', 2);
      const backoff = { kind: 'exponential', initialMs: 1000, maxMs: 60_000, jitter: false } as const;
      // not counted: the row keeps 2 attempts, and waits as the 2nd retry did
      expect(await retryIn('q', 'a', { backoff, countAttempt: false })).toBe(2000);
      clock.set(clock.now() + 2000);
      expect((await store.claim('q', 'w', { limit: 1, leaseMs: 1000 })).map((c) => c.attempts)).toEqual([2]);
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

    it('lists checkpoints by a prefix taken literally, in key order, with when they were set', async () => {
      clock.set(5_000);
      await store.setCheckpoint('outbox:f:s:disabled:http://b.example/', '{"at":1}');
      await store.setCheckpoint('outbox:f:s:disabled:http://a.example/', '{"at":2}');
      await store.setCheckpoint('outbox:f:s:fifo', '{}');
      await store.setCheckpoint('outbox:g:s:disabled:http://c.example/', '{"at":3}');
      await store.setCheckpoint('a%b_c', 'pattern characters');
      await store.setCheckpoint('axbyc', 'would match a LIKE pattern');
      const list = await store.listCheckpoints('outbox:f:s:disabled:');
      expect(list).toEqual([
        { key: 'outbox:f:s:disabled:http://a.example/', value: '{"at":2}', updatedAt: 5_000 },
        { key: 'outbox:f:s:disabled:http://b.example/', value: '{"at":1}', updatedAt: 5_000 },
      ]);
      expect((await store.listCheckpoints('a%b_')).map((c) => c.key)).toEqual(['a%b_c']);
      expect((await store.listCheckpoints('outbox:')).map((c) => c.key)).toHaveLength(4);
      expect(await store.listCheckpoints('nothing-here')).toEqual([]);
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
  
    it('answers every call on a closed store with a rejected promise, never a synchronous throw', async () => {
      // callers chain `.catch()` on store calls (lease renewals, releases at stop): a throw
      // before the promise would escape them as an uncaught exception
      const closed = await factory(clock);
      await closed.close();
      const calls: [string, () => Promise<unknown>][] = [
        ['enqueue', () => closed.enqueue('q', [{ message: msg('a') }])],
        ['enqueueLeased', () => closed.enqueueLeased('q', 'w', [{ message: msg('a') }], { leaseMs: 1000 })],
        ['claim', () => closed.claim('q', 'w', { limit: 1, leaseMs: 1000 })],
        ['complete', () => closed.complete('q', 'w', ['a'])],
        ['retry', () => closed.retry('q', 'w', 'a', { availableAt: 0 })],
        ['release', () => closed.release('q', 'w', ['a'])],
        ['extendLease', () => closed.extendLease('q', 'w', ['a'], 1000)],
        ['queueStats', () => closed.queueStats('q')],
        ['nextAvailableAt', () => closed.nextAvailableAt('q')],
        ['getCheckpoint', () => closed.getCheckpoint('k')],
        ['setCheckpoint', () => closed.setCheckpoint('k', 'v')],
        ['deleteCheckpoint', () => closed.deleteCheckpoint('k')],
        ['remember', () => closed.remember('s', ['k'], 1000)],
        ['seen', () => closed.seen('s', ['k'])],
        ['purgeExpired', () => closed.purgeExpired()],
        ['acquireRate', () => closed.acquireRate('r', { count: 1, perMs: 1000 })],
        ['acquireLease', () => closed.acquireLease('l', 'w', 1000)],
        ['releaseLease', () => closed.releaseLease('l', 'w')],
        ['deadLetter', () => closed.deadLetter([{ flow: 'f', message: msg('a'), stage: 'sink', reason: 'r', attempts: 1 }])],
        ['listDeadLetters', () => closed.listDeadLetters()],
        ['getDeadLetter', () => closed.getDeadLetter(1)],
        ['countDeadLetters', () => closed.countDeadLetters()],
        ['replayDeadLetters', () => closed.replayDeadLetters([1], () => 'q')],
        ['deleteDeadLetters', () => closed.deleteDeadLetters([1])],
        ['recordDeliveryAttempts', () => closed.recordDeliveryAttempts([], { queue: 'q', owner: 'w', ids: ['a'] })],
        ['listDeliveryAttempts', () => closed.listDeliveryAttempts()],
        ['purgeDeliveryAttempts', () => closed.purgeDeliveryAttempts(0)],
      ];
      for (const [name, call] of calls) {
        let result: Promise<unknown>;
        try {
          result = call();
        } catch (err) {
          throw new Error(`${name} threw at once on a closed store: ${String(err)}`);
        }
        await expect(result, name).rejects.toBeDefined();
      }
    });
  });
}
