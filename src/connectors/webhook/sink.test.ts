import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import { createMessage } from '../../core/message.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import { replayQueueFor } from '../../store/types.js';
import { componentContext } from '../../testing/contexts.js';
import { FakeClock } from '../../testing/fake-clock.js';
import { CircuitBreaker, parseRetryAfter, RateLimiter, scheduledDelay } from './schedule.js';
import { enableEndpoints, listDisabledEndpoints } from './endpoints.js';
import { purgeEvery, resolveSinkSettings, WebhookSink } from './sink.js';
import type { WebhookSinkConfig } from './spec.js';
import { SsrfGuard } from './ssrf.js';
import { createVerifier } from './verify.js';

const dir = mkdtempSync(join(tmpdir(), 'ix-webhook-sink-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const secret = 'whsec_' + Buffer.from('outbound-secret-for-tests-32byte').toString('base64');

interface Received {
  at: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A local receiver whose answers the test scripts. */
class Receiver {
  readonly received: Received[] = [];
  answer: (r: Received, index: number) => { status: number; headers?: Record<string, string>; body?: string } | 'hang' = () => ({ status: 200 });
  private server: Server | undefined;
  url = '';

  constructor(private readonly clock: Clock) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const r = { at: this.clock.now(), headers: req.headers, body: Buffer.concat(chunks).toString() };
        this.received.push(r);
        const a = this.answer(r, this.received.length - 1);
        if (a === 'hang') return; // read the request, never answer (until close)
        res.writeHead(a.status, a.headers ?? {});
        res.end(a.body ?? '');
      });
    });
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/hook`;
    return this;
  }

  close(): Promise<void> {
    this.server?.closeAllConnections();
    return new Promise((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(clock: Clock, config: Partial<WebhookSinkConfig> = {}, existing?: SqliteStore) {
  const store = existing ?? new SqliteStore(join(dir, `s${n++}.db`), { clock, synchronous: 'normal' });
  const receiver = await new Receiver(clock).start();
  const ctx = componentContext({ flow: 'out', name: 'out.sink', clock, store });
  const make = (extra: Partial<WebhookSinkConfig> = {}) =>
    new WebhookSink(
      resolveSinkSettings({ url: receiver.url, sign: { scheme: 'standard-webhooks', secret }, allowNetworks: ['127.0.0.1/32'], jitter: 0, ...config, ...extra }),
      ctx,
      { pollMs: 60_000 },
    );
  const sink = make();
  cleanups.push(async () => {
    await sink.close();
    await receiver.close();
    if (!existing) await store.close();
  });
  return { store, receiver, sink, make, ctx };
}

const msg = (id: string, payload: unknown = { id }, key?: string) => createMessage({ id, payload, ...(key ? { key } : {}) });

describe('webhook sink', () => {
  it('delivers signed requests that the standardwebhooks library verifies, and records the attempt', async () => {
    const { sink, receiver, store } = await setup(systemClock);
    await sink.write([msg('evt_1', { type: 'order.created', n: 1 })]);
    await until(() => receiver.received.length === 1, 'delivery');
    const r = receiver.received[0] as Received;
    const headers = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, String(v)]));
    expect(new Webhook(secret).verify(r.body, headers)).toEqual({ type: 'order.created', n: 1 });
    expect(r.headers['webhook-id']).toBe('evt_1');
    expect(r.headers['content-type']).toBe('application/json');
    await until(async () => (await store.listDeliveryAttempts()).length === 1, 'attempt record');
    const [a] = await store.listDeliveryAttempts();
    expect(a).toMatchObject({ flow: 'out', messageId: 'evt_1', attempt: 1, status: 200, outcome: 'delivered', url: receiver.url });
    expect(sink.counts.delivered).toBe(1);
    // the flow sending the same message again (at-least-once upstream) does not deliver it twice
    await sink.write([msg('evt_1', { type: 'order.created', n: 1 })]);
    await new Promise((res) => setTimeout(res, 100));
    expect(receiver.received).toHaveLength(1);
    expect(sink.counts.deduplicated).toBe(1);
  });

  it('waits on the wake signal with one listener however often the loop waits (no listener build-up between wakes)', async () => {
    const { sink } = await setup(systemClock);
    const inner = sink as unknown as { woken(): Promise<void>; wakeController: AbortController };
    const signal = inner.wakeController.signal;
    const waits = Array.from({ length: 50 }, () => inner.woken());
    expect(getEventListeners(signal, 'abort')).toHaveLength(1);
    await sink.write([msg('evt_wake')]); // a write wakes the loop
    await Promise.all(waits);
  });

  it('close gives back what it claimed and did not deliver (started and kept for later), so a restart sends it', async () => {
    const { sink, receiver, store, make } = await setup(systemClock, { concurrency: 2 });
    receiver.answer = () => 'hang';
    await sink.write(Array.from({ length: 6 }, (_, i) => msg(`evt_c${i}`)));
    await until(() => receiver.received.length === 2, 'two hanging deliveries');
    await sink.close();
    // nothing stays leased: the two abandoned ones and the ones claimed ahead are all ready again
    expect(await store.queueStats(sink.queue)).toEqual({ ready: 6, scheduled: 0, leased: 0 });
    receiver.answer = () => ({ status: 204 });
    const again = make();
    cleanups.push(() => again.close());
    await until(() => again.counts.delivered === 6, 'all six delivered after the restart');
    await again.idle();
    expect(await store.queueStats(sink.queue)).toEqual({ ready: 0, scheduled: 0, leased: 0 });
    expect((await store.listDeliveryAttempts({ outbox: sink.queue })).filter((a) => a.outcome === 'delivered')).toHaveLength(6);
  });

  it('a write hands its messages to the delivery worker leased: no other worker claims them, a crash returns them after the lease, never sent twice', async () => {
    const clock = new FakeClock(Date.now());
    const { sink, receiver, store } = await setup(clock, { concurrency: 1, timeout: '30s' });
    receiver.answer = () => 'hang';
    await sink.write(Array.from({ length: 4 }, (_, i) => msg(`evt_h${i}`)));
    await until(() => receiver.received.length === 1, 'the first delivery, hanging');
    // written leased to the sink: one in flight, three held for it, none ready for anyone else
    expect(await store.queueStats(sink.queue)).toEqual({ ready: 0, scheduled: 0, leased: 4 });
    expect(await store.claim(sink.queue, 'other-worker', { limit: 10, leaseMs: 600_000 })).toEqual([]);
    // the sink stalls past every lease (as a crashed one would): the outbox gives them to another worker
    clock.set(clock.now() + 2 * 30_000 + 10_000 + 1);
    const taken = await store.claim(sink.queue, 'other-worker', { limit: 10, leaseMs: 600_000 });
    expect(taken.map((t) => [t.message.id, t.attempts])).toEqual([0, 1, 2, 3].map((i) => [`evt_h${i}`, 0]));
    // the stalled sink wakes up (its request fails): it sends none of the held ones, now another's
    await receiver.close();
    await until(async () => (await store.listDeliveryAttempts({ outbox: sink.queue })).length === 1, 'the failed attempt recorded');
    await sink.idle();
    await new Promise((r) => setTimeout(r, 50));
    await sink.idle();
    expect((await store.listDeliveryAttempts({ outbox: sink.queue })).map((a) => a.messageId)).toEqual(['evt_h0']);
    expect(receiver.received).toHaveLength(1);
    expect(await store.queueStats(sink.queue)).toEqual({ ready: 0, scheduled: 0, leased: 4 });
  });

  it('a held message whose lease could run out during its attempt is renewed before it is sent', async () => {
    const clock = new FakeClock(Date.now());
    const { sink, receiver, store } = await setup(clock, { concurrency: 1, timeout: '1s', schedule: ['0s', '1h'] });
    receiver.answer = () => 'hang';
    const written = clock.now();
    await sink.write([msg('evt_l0'), msg('evt_l1')]);
    await until(() => receiver.received.length === 1, 'the first delivery, hanging');
    clock.set(written + 5_000); // evt_l1 is held with 7 s of its 12 s lease left: less than an attempt needs
    await until(() => receiver.received.length === 2, 'the held one sent once the first timed out');
    clock.set(written + 13_000); // past the lease it was written with
    expect(await store.claim(sink.queue, 'other-worker', { limit: 10, leaseMs: 60_000 })).toEqual([]);
  });

  it('a retry due in the outbox is sent before messages written later and held for the worker', async () => {
    const clock = new FakeClock(Date.now());
    const { sink, receiver, store } = await setup(clock, { concurrency: 1, timeout: '1s', schedule: ['0s', '1s', '1s'] });
    receiver.answer = (_r, i) => (i === 0 ? { status: 500 } : i === 1 ? 'hang' : { status: 204 });
    await sink.write([msg('evt_r0')]);
    await until(async () => (await store.listDeliveryAttempts({ outbox: sink.queue })).length === 1, 'the first attempt failed');
    await sink.write(['evt_h0', 'evt_h1', 'evt_h2'].map((id) => msg(id)));
    await until(() => receiver.received.length === 2, 'the next delivery, hanging');
    clock.set(clock.now() + 2_000); // the retry of evt_r0 is due; evt_h1 and evt_h2 wait held
    await until(() => receiver.received.length === 5, 'the retry and the held ones, once the hanging one timed out');
    expect(receiver.received.map((r) => r.headers['webhook-id'])).toEqual(['evt_r0', 'evt_h0', 'evt_r0', 'evt_h1', 'evt_h2']);
  });

  it('schedule: fails the first 4 attempts, delivers exactly once at the 5th, at the scheduled times', async () => {
    const clock = new FakeClock(Date.now());
    const { sink, receiver, store } = await setup(clock);
    receiver.answer = (_r, i) => (i < 4 ? { status: 500, body: `failure ${i + 1}` } : { status: 204 });
    const t0 = clock.now();
    await sink.write([msg('evt_s')]);
    const offsets = [0, 60_000, 6 * 60_000, 36 * 60_000, 156 * 60_000];
    for (let i = 0; i < 5; i++) {
      await until(() => receiver.received.length === i + 1, `attempt ${i + 1}`);
      await until(async () => (await store.listDeliveryAttempts()).length === i + 1, `record ${i + 1}`);
      if (i < 4) {
        const next = t0 + (offsets[i + 1] as number);
        await until(() => clock.pending > 0, `worker sleeping until attempt ${i + 2}`);
        // nothing happens one ms before the scheduled time
        await clock.advance(next - 1 - clock.now());
        expect(receiver.received).toHaveLength(i + 1);
        await clock.advance(1);
      }
    }
    expect(receiver.received.map((r) => r.at - t0)).toEqual(offsets);
    expect(new Set(receiver.received.map((r) => r.headers['webhook-id']))).toEqual(new Set(['evt_s']));
    // each attempt is freshly signed and verifies at its own time
    const v = createVerifier({ scheme: 'standard-webhooks', secret });
    for (const r of receiver.received) expect(v.verify(Buffer.from(r.body), r.headers, r.at).ok).toBe(true);
    const attempts = await store.listDeliveryAttempts({ messageId: 'evt_s' });
    expect(attempts.map((a) => [a.attempt, a.status, a.outcome])).toEqual([
      [1, 500, 'retry'],
      [2, 500, 'retry'],
      [3, 500, 'retry'],
      [4, 500, 'retry'],
      [5, 204, 'delivered'],
    ]);
    expect(attempts[0]?.responseExcerpt).toBe('failure 1');
    expect(attempts[0]?.nextAt).toBe(t0 + 60_000);
    // a 24-hour wait brings nothing more
    await clock.advance(25 * 3_600_000);
    await sink.idle();
    expect(receiver.received).toHaveLength(5);
    expect(sink.counts).toMatchObject({ delivered: 1, retried: 4, deadLettered: 0 });
    expect(await store.countDeadLetters()).toBe(0);
  });

  it('exhausted → dead letter with the reason; dlq replay sends it again', async () => {
    const clock = new FakeClock(Date.now());
    const { sink, receiver, store } = await setup(clock, { schedule: ['0s', '1s', '1s'] });
    receiver.answer = () => ({ status: 502, body: 'bad gateway' });
    await sink.write([msg('evt_d')]);
    for (let i = 1; i <= 3; i++) {
      await until(() => receiver.received.length === i, `attempt ${i}`);
      await until(async () => (await store.listDeliveryAttempts()).length === i, 'record');
      if (i < 3) await clock.advance(1000);
    }
    await until(async () => (await store.countDeadLetters()) === 1, 'dead letter');
    const [d] = await store.listDeadLetters();
    expect(d).toMatchObject({ flow: 'out', stage: 'sink:webhook', attempts: 3, replayQueue: sink.queue });
    expect(d?.reason).toBe('gave up after 3 attempts; last: HTTP 502: bad gateway');
    expect((await store.listDeliveryAttempts()).at(-1)?.outcome).toBe('dead-letter');
    receiver.answer = () => ({ status: 200 });
    await store.replayDeadLetters([d?.id as number], replayQueueFor);
    await clock.advance(60_000); // the idle worker polls and finds it
    await until(() => receiver.received.length === 4, 'replayed delivery');
    expect(receiver.received[3]?.headers['webhook-id']).toBe('evt_d');
  });

  // The injected clock is years away from the wall clock: an HTTP date read against Date.now()
  // would be long past (or far ahead), not 120 s from the sink's now.
  it.each([429, 502, 503, 504].flatMap((status) => [[status, 'seconds'] as const, [status, 'an HTTP date'] as const]))(
    'honours Retry-After on %i given as %s, on the injected clock, instead of the schedule',
    async (status, form) => {
      const clock = new FakeClock(Date.UTC(2031, 5, 1, 12, 0, 0));
      const { sink, receiver, store } = await setup(clock);
      const t0 = clock.now();
      const retryAfter = form === 'seconds' ? '120' : new Date(t0 + 120_000).toUTCString();
      receiver.answer = (_r, i) => (i === 0 ? { status, headers: { 'retry-after': retryAfter } } : { status: 200 });
      await sink.write([msg(`evt_r${status}`)]);
      await until(async () => (await store.listDeliveryAttempts()).length === 1, 'first attempt');
      expect((await store.listDeliveryAttempts())[0]).toMatchObject({ status, outcome: 'retry', nextAt: t0 + 120_000 });
      await until(() => clock.pending > 0, 'worker sleeping until the retry');
      await clock.advance(119_999);
      expect(receiver.received).toHaveLength(1);
      await clock.advance(1);
      await until(() => receiver.received.length === 2, 'second attempt');
      expect((receiver.received[1] as Received).at - t0).toBe(120_000);
      await until(() => sink.counts.delivered === 1, 'delivered');
    },
  );

  it('one dead endpoint (no answer, or 503 after 503) does not hold up deliveries to a healthy one', async () => {
    const store = new SqliteStore(join(dir, `s${n++}.db`), { clock: systemClock, synchronous: 'normal' });
    cleanups.push(() => store.close());
    const endpoint = async (flow: string, answer: Receiver['answer'], extra: Partial<WebhookSinkConfig> = {}) => {
      const receiver = await new Receiver(systemClock).start();
      receiver.answer = answer;
      const sink = new WebhookSink(
        resolveSinkSettings({ url: receiver.url, sign: { scheme: 'standard-webhooks', secret }, allowNetworks: ['127.0.0.1/32'], jitter: 0, concurrency: 4, ...extra }),
        componentContext({ flow, name: `${flow}.sink`, clock: systemClock, store }),
      );
      cleanups.push(async () => {
        await sink.close();
        await receiver.close();
      });
      return { receiver, sink };
    };
    // the silent one would only time out after 10 minutes; the failing one is retried every 200 ms
    const silent = await endpoint('silent', () => 'hang', { timeout: '10m' });
    const failing = await endpoint('failing', () => ({ status: 503 }), { schedule: ['0s', ...Array.from({ length: 50 }, () => '200ms')] });
    const healthy = await endpoint('healthy', () => ({ status: 200 }));
    const batch = (prefix: string) => Array.from({ length: 30 }, (_v, i) => msg(`${prefix}-${i}`));
    await silent.sink.write(batch('s'));
    await failing.sink.write(batch('f'));
    // four requests hang at the silent one; the failing one fails until its breaker opens
    await until(() => silent.receiver.received.length >= 4 && failing.receiver.received.length >= 5, 'dead endpoints busy', 30_000);
    await healthy.sink.write(batch('h'));
    await until(() => healthy.sink.counts.delivered === 30, 'every healthy delivery', 30_000);
    // meanwhile the silent endpoint has not answered once, and the failing one has delivered nothing
    expect(silent.sink.counts.delivered + failing.sink.counts.delivered).toBe(0);
    expect((await store.listDeliveryAttempts()).filter((a) => a.flow === 'silent')).toHaveLength(0);
    expect(new Set(healthy.receiver.received.map((r) => r.headers['webhook-id']))).toEqual(new Set(batch('h').map((m) => m.id)));
  }, 60_000);

  it('an endpoint that does not answer within the timeout gets its attempt recorded as timed out and retried', async () => {
    const store = new SqliteStore(join(dir, `s${n++}.db`), { clock: systemClock, synchronous: 'normal' });
    cleanups.push(() => store.close());
    const receiver = await new Receiver(systemClock).start();
    receiver.answer = () => 'hang';
    const sink = new WebhookSink(
      resolveSinkSettings({ url: receiver.url, sign: { scheme: 'standard-webhooks', secret }, allowNetworks: ['127.0.0.1/32'], jitter: 0, timeout: '300ms', schedule: ['0s', '1h'] }),
      componentContext({ flow: 'slow', name: 'slow.sink', clock: systemClock, store }),
    );
    cleanups.push(async () => {
      await sink.close();
      await receiver.close();
    });
    await sink.write([msg('t1'), msg('t2')]);
    await until(async () => (await store.listDeliveryAttempts()).filter((a) => a.flow === 'slow').length === 2, 'two timed-out attempts', 30_000);
    const attempts = (await store.listDeliveryAttempts()).filter((a) => a.flow === 'slow');
    expect(attempts.map((a) => a.outcome)).toEqual(['retry', 'retry']);
    // our deadline normally fires first; undici's own headers timeout (same length, coarser timer) may under load
    for (const a of attempts) expect(a.error).toMatch(/^(timed out after 300 ms|UND_ERR_HEADERS_TIMEOUT)/);
    expect(sink.counts.retried).toBe(2);
  }, 60_000);

  it('410 disables the endpoint: that message and later ones are dead-lettered, nothing more is sent', async () => {
    const clock = new FakeClock(Date.now());
    const { sink, receiver, store, make } = await setup(clock);
    receiver.answer = () => ({ status: 410 });
    await sink.write([msg('g1')]);
    await until(async () => (await store.countDeadLetters()) === 1, 'dead letter');
    await sink.write([msg('g2')]);
    await until(async () => (await store.countDeadLetters()) === 2, 'second dead letter');
    expect(receiver.received).toHaveLength(1);
    const reasons = (await store.listDeadLetters()).map((d) => d.reason);
    expect(reasons[0]).toBe('endpoint answered 410 Gone and is disabled');
    expect(reasons[1]).toMatch(/^endpoint http:\/\/127\.0\.0\.1:\d+ is disabled: it answered 410 Gone at /);
    // disabled survives a restart
    await sink.close();
    const again = make();
    cleanups.push(() => again.close());
    await again.write([msg('g3')]);
    await until(async () => (await store.countDeadLetters()) === 3, 'third dead letter');
    expect(receiver.received).toHaveLength(1);
  });

  it('a disabled endpoint enabled again (`ix endpoints enable`) is delivered to by the running sink, without a restart', async () => {
    const clock = new FakeClock(Date.now());
    const { sink, receiver, store } = await setup(clock);
    receiver.answer = () => ({ status: 410 });
    await sink.write([msg('e1')]);
    await until(async () => (await store.countDeadLetters()) === 1, 'dead letter');
    const listed = await listDisabledEndpoints(store);
    expect(listed).toEqual([{ flow: 'out', sink: 'out.sink', url: receiver.url, since: clock.now(), key: expect.stringMatching(/^outbox:out:out\.sink:disabled:/) as unknown }]);
    expect(await listDisabledEndpoints(store, 'other')).toEqual([]);
    // fixed at the same URL, and enabled: the next delivery goes out once the sink looked again
    receiver.answer = () => ({ status: 204 });
    expect((await enableEndpoints(store, 'out', 'out.sink')).map((d) => d.sink)).toEqual(['out.sink']);
    expect(await listDisabledEndpoints(store)).toEqual([]);
    await clock.advance(1000);
    await sink.write([msg('e2')]);
    await until(() => sink.counts.delivered === 1, 'delivered after enabling');
    expect(receiver.received.map((r) => (JSON.parse(r.body) as { id: string }).id)).toEqual(['e1', 'e2']);
    expect(await store.countDeadLetters()).toBe(1);
  });

  it('lists a disabled endpoint without the query or credentials of its URL', async () => {
    const clock = new FakeClock(Date.now());
    const { store } = await setup(clock);
    await store.setCheckpoint('outbox:f:f.sinks[1]:disabled:https://user:pw@hooks.example/in?token=s3cret#x', JSON.stringify({ at: 42 }));
    await store.setCheckpoint('outbox:f:f.sinks[1]:fifo', '{}');
    const [d, ...rest] = await listDisabledEndpoints(store, 'f');
    expect(rest).toEqual([]);
    expect(d).toMatchObject({ flow: 'f', sink: 'f.sinks[1]', url: 'https://hooks.example/in', since: 42 });
    expect(JSON.stringify({ ...d, key: undefined })).not.toMatch(/s3cret|pw@/);
  });

  it('purges attempts older than keepAttempts from the history, at start and then periodically', async () => {
    const clock = new FakeClock(Date.now());
    const { sink, receiver, store } = await setup(clock, { keepAttempts: '1h' });
    await sink.write([msg('evt_old')]);
    await until(async () => (await store.listDeliveryAttempts()).length === 1, 'first attempt recorded');
    // another outbox's history is not this sink's to purge
    await store.recordDeliveryAttempts([{ flow: 'other', outbox: 'outbox:other:x', messageId: 'o1', attempt: 1, url: receiver.url, at: clock.now(), latencyMs: 1, outcome: 'delivered' }]);
    await clock.advance(30 * 60_000);
    await sink.write([msg('evt_new')]);
    await until(async () => (await store.listDeliveryAttempts()).length === 3, 'second attempt recorded');
    // purges run every 6 minutes here; 70 minutes after the first attempt it is gone, and only it
    await clock.advance(40 * 60_000);
    await until(async () => (await store.listDeliveryAttempts()).length === 2, 'old attempt purged');
    expect((await store.listDeliveryAttempts()).map((a) => a.messageId).sort()).toEqual(['evt_new', 'o1']);
    expect(receiver.received).toHaveLength(2);
  });

  it('runs attempts that fell due while the process was down at start', async () => {
    const clock = new FakeClock(Date.now());
    const { sink, receiver, store, make } = await setup(clock);
    receiver.answer = (_r, i) => (i === 0 ? { status: 500 } : { status: 200 });
    await sink.write([msg('evt_down')]);
    await until(async () => (await store.listDeliveryAttempts()).length === 1, 'first attempt');
    await sink.close();
    clock.set(clock.now() + 10 * 60_000); // down for 10 minutes, past the 1-minute retry
    const again = make();
    cleanups.push(() => again.close());
    await until(() => again.counts.delivered === 1, 'retry at start delivered');
    expect(receiver.received).toHaveLength(2);
  });

  it('the circuit breaker stops attempts to a failing endpoint until half-open', async () => {
    const clock = new FakeClock(Date.now());
    const { sink, receiver } = await setup(clock, {
      schedule: ['0s', '1h'],
      concurrency: 1,
      circuitBreaker: { failures: 2, halfOpenAfter: '30s' },
    });
    receiver.answer = () => ({ status: 500 });
    await sink.write(['b1', 'b2', 'b3', 'b4'].map((id) => msg(id)));
    await until(() => receiver.received.length === 2, 'two failures');
    await new Promise((r) => setTimeout(r, 150));
    expect(receiver.received).toHaveLength(2); // open: b3, b4 wait
    receiver.answer = () => ({ status: 200 });
    await clock.advance(30_000);
    await until(() => receiver.received.length === 4, 'trial then the rest');
    expect(receiver.received.map((r) => JSON.parse(r.body).id)).toEqual(['b1', 'b2', 'b3', 'b4']);
  });

  it('FIFO per key: a later message waits while an earlier one with the same key is retried', async () => {
    const clock = new FakeClock(Date.now());
    const { sink, receiver } = await setup(clock, { fifo: true });
    receiver.answer = (r) => (JSON.parse(r.body).id === 'k1' && !receiver.received.slice(0, -1).some((x) => JSON.parse(x.body).id === 'k1') ? { status: 500 } : { status: 200 });
    await sink.write([msg('k1', { id: 'k1' }, 'cust-1'), msg('k2', { id: 'k2' }, 'cust-1'), msg('o1', { id: 'o1' }, 'cust-2')]);
    await until(() => receiver.received.length === 2, 'k1 fails, o1 delivered');
    await new Promise((r) => setTimeout(r, 100));
    expect(receiver.received.map((r) => JSON.parse(r.body).id).sort()).toEqual(['k1', 'o1']);
    await clock.advance(60_000);
    await until(() => receiver.received.length === 3, 'k1 retried');
    await clock.advance(1);
    await until(() => receiver.received.length === 4, 'k2 after k1');
    expect(receiver.received.map((r) => JSON.parse(r.body).id).slice(2)).toEqual(['k1', 'k2']);
  });

  it('the SSRF guard refuses private targets unless allowed', async () => {
    const clock = new FakeClock(Date.now());
    expect(() => resolveSinkSettings({ url: 'http://127.0.0.1:1/x' })).toThrow(/refused to deliver to http:\/\/127\.0\.0\.1:1: address 127\.0\.0\.1 is loopback/);
    expect(() => resolveSinkSettings({ url: 'http://169.254.169.254/latest', allowPrivateNetworks: true })).toThrow(/metadata/);
    expect(() => resolveSinkSettings({ url: 'http://[::1]:1/x' })).toThrow(/loopback/);
    // a name that resolves to loopback is refused at connect time, at once (no retries)
    const { receiver, store } = await setup(clock);
    const port = new URL(receiver.url).port;
    const named = new WebhookSink(resolveSinkSettings({ url: `http://localhost:${port}/hook`, sign: { scheme: 'standard-webhooks', secret } }), componentContext({ flow: 'out', name: 'named', clock, store }));
    cleanups.push(() => named.close());
    await named.write([msg('ssrf')]);
    await until(async () => (await store.countDeadLetters()) === 1, 'refusal');
    const [d] = await store.listDeadLetters();
    expect(d?.reason).toMatch(/refused to deliver to http:\/\/localhost:\d+: address (127\.0\.0\.1|::1) is loopback/);
    expect(receiver.received).toHaveLength(0);
  });
});

describe('schedule, breaker, rate limit, guard', () => {
  it('purges the attempt history every tenth of keepAttempts, between 1 min and 1 h', () => {
    expect(purgeEvery(30 * 86_400_000)).toBe(3_600_000);
    expect(purgeEvery(3_600_000)).toBe(360_000);
    expect(purgeEvery(1000)).toBe(60_000);
  });

  it('applies jitter within bounds and ends the schedule', () => {
    const s = [0, 60_000, 300_000];
    expect(scheduledDelay(s, 1, 0.1, () => 0)).toBe(54_000);
    expect(scheduledDelay(s, 1, 0.1, () => 1)).toBe(66_000);
    expect(scheduledDelay(s, 2, 0)).toBe(300_000);
    expect(scheduledDelay(s, 3, 0.1)).toBeUndefined();
  });
  it('parses Retry-After as seconds or a date', () => {
    expect(parseRetryAfter('30', 0)).toBe(30_000);
    expect(parseRetryAfter(new Date(100_000).toUTCString(), 40_000)).toBe(60_000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    expect(parseRetryAfter(undefined, 0)).toBeUndefined();
  });
  it('rate-limits with the injected clock', async () => {
    const clock = new FakeClock();
    const rl = new RateLimiter(clock, { count: 2, perMs: 1000 });
    expect(rl.tryTake()).toBe(0);
    expect(rl.tryTake()).toBe(0);
    expect(rl.tryTake()).toBe(500);
    clock.set(clock.now() + 500);
    expect(rl.tryTake()).toBe(0);
  });
  it('opens, half-opens with one trial, closes', () => {
    const clock = new FakeClock();
    const b = new CircuitBreaker(clock, 2, 1000);
    b.failure();
    expect(b.state()).toBe('closed');
    b.failure();
    expect(b.state()).toBe('open');
    clock.set(clock.now() + 1000);
    expect(b.tryTrial()).toBe(true);
    expect(b.tryTrial()).toBe(false);
    b.failure();
    expect(b.state()).toBe('open');
    clock.set(clock.now() + 1000);
    b.success();
    expect(b.state()).toBe('closed');
  });
  it('guards special-purpose addresses after resolution', async () => {
    const g = new SsrfGuard();
    for (const a of ['127.0.0.1', '10.1.1.1', '172.16.0.1', '192.168.1.1', '169.254.169.254', '::1', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '0.0.0.0', '100.64.0.1']) {
      expect(g.refusal(a), a).toBeDefined();
    }
    for (const a of ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946', '8.8.8.8']) expect(g.refusal(a), a).toBeUndefined();
    expect(new SsrfGuard({ allowPrivateNetworks: true }).refusal('10.0.0.1')).toBeUndefined();
    expect(new SsrfGuard({ allowPrivateNetworks: true }).refusal('169.254.169.254')).toMatch(/metadata/);
    expect(new SsrfGuard({ allow: ['169.254.169.254/32'] }).refusal('169.254.169.254')).toBeUndefined();
    const err = await new Promise<NodeJS.ErrnoException | null>((r) => g.lookup('localhost', {}, (e) => r(e)));
    expect(err?.code).toBe('IX_SSRF_REFUSED');
  });
});
