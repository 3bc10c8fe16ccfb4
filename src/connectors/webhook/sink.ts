import { randomBytes } from 'node:crypto';
import type * as Undici from 'undici';
import type { Dispatcher } from 'undici';
import type { Clock } from '../../core/clock.js';
import type { ComponentContext, ComponentStore, Sink, SinkContext } from '../../core/component.js';
import type { DeliveryAttemptInput, DeliveryOutcome, DurableQueueItem, DurableStore } from '../../core/durable.js';
import { IxError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { toStored, type Message, type StoredMessage } from '../../core/message.js';
import { parseDuration, parseRate, parseSize } from '../../core/units.js';
import { CircuitBreaker, DEFAULT_SCHEDULE, parseRetryAfter, RateLimiter, RETRY_AFTER_STATUSES, scheduledDelay } from './schedule.js';
import type { WebhookSinkConfig } from './spec.js';
import { SsrfGuard } from './ssrf.js';
import { exchange } from '../../resilience/exchange.js';
import { Deadlines, type AttemptAbort } from '../../resilience/timeout.js';
import { createSigner, type Signer } from './verify.js';
import { lazyModule } from '../../core/lazy-module.js';
import { Fifo } from '../../core/fifo.js';
import { disabledKey } from './endpoints.js';

/** Loaded on first use: a spec without HTTP calls never loads undici. */
const undici = lazyModule<typeof Undici>('undici');

/** Resolved settings of one webhook sink. */
export interface WebhookSinkSettings {
  readonly url: URL;
  readonly method: 'POST' | 'PUT' | 'PATCH';
  readonly headers: Record<string, string>;
  readonly signer: Signer;
  readonly scheduleMs: readonly number[];
  readonly jitter: number;
  readonly timeoutMs: number;
  readonly maxRetryAfterMs: number;
  readonly concurrency: number;
  readonly rateLimit: ReturnType<typeof parseRate> | undefined;
  readonly breaker: { readonly failures: number; readonly halfOpenAfterMs: number };
  readonly fifo: boolean;
  readonly guard: SsrfGuard;
  readonly excerptBytes: number;
  readonly dedupeWindowMs: number;
  readonly keepAttemptsMs: number;
}

/** How often attempts older than `keepAttempts` are purged: a tenth of it, between 1 min and 1 h. */
export function purgeEvery(keepAttemptsMs: number): number {
  return Math.min(3_600_000, Math.max(60_000, Math.floor(keepAttemptsMs / 10)));
}

const dur = (v: unknown, d: string): number => parseDuration((v as string | number | undefined) ?? d);

export function resolveSinkSettings(config: WebhookSinkConfig): WebhookSinkSettings {
  const url = new URL(config.url);
  const guard = new SsrfGuard({ allowPrivateNetworks: config.allowPrivateNetworks ?? false, allow: config.allowNetworks ?? [] });
  const refused = guard.checkUrl(url);
  if (refused) throw new IxError('IX_WEBHOOK_SSRF', { url: url.origin, detail: refused });
  const sign = config.sign ?? { scheme: 'standard-webhooks' as const };
  const scheme = sign.scheme ?? 'standard-webhooks';
  return {
    url,
    method: config.method ?? 'POST',
    headers: config.headers ?? {},
    signer: createSigner({
      scheme,
      ...(sign.secret !== undefined ? { secret: sign.secret } : {}),
      ...(sign.algorithm ? { algorithm: sign.algorithm } : {}),
      ...(sign.header ? { header: sign.header } : {}),
      ...(sign.encoding ? { encoding: sign.encoding } : {}),
      ...(sign.prefix !== undefined ? { prefix: sign.prefix } : {}),
    }),
    scheduleMs: ((config.schedule as (string | number)[] | undefined) ?? DEFAULT_SCHEDULE).map((d) => parseDuration(d)),
    jitter: config.jitter ?? 0.1,
    timeoutMs: dur(config.timeout, '15s'),
    maxRetryAfterMs: dur(config.maxRetryAfter, '24h'),
    concurrency: config.concurrency ?? 16,
    rateLimit: config.rateLimit ? parseRate(config.rateLimit as string) : undefined,
    breaker: {
      failures: config.circuitBreaker?.failures ?? 5,
      halfOpenAfterMs: dur(config.circuitBreaker?.halfOpenAfter, '30s'),
    },
    fifo: config.fifo ?? false,
    guard,
    excerptBytes: parseSize((config.responseExcerpt as string | number | undefined) ?? '1KiB'),
    dedupeWindowMs: dur(config.dedupeWindow, '24h'),
    keepAttemptsMs: dur(config.keepAttempts, '30d'),
  };
}

interface AttemptResult {
  status?: number;
  error?: string;
  excerpt?: string;
  retryAfterMs?: number;
  /** A refusal no retry can fix (SSRF guard). */
  permanent?: boolean;
  latencyMs: number;
}

/** What an attempt record says before the attempt ran. */
type AttemptBase = Pick<DeliveryAttemptInput, 'flow' | 'outbox' | 'messageId' | 'attempt' | 'url' | 'at'>;

interface FifoBlock {
  /** The message holding the key. */
  readonly id: string;
  /** When it is next tried. */
  readonly until: number;
}

/** A queue item whose lease this sink holds, not started yet (written or claimed ahead). */
interface Held {
  readonly item: DurableQueueItem;
  /** When the lease runs out (this sink's clock; the store's own expiry is no earlier). */
  until: number;
  /** The request body, made when it was written (absent when claimed). */
  readonly body?: Buffer;
}

/**
 * What a write hands straight to the delivery worker at most (count, body bytes); beyond it
 * a write goes to the outbox unleased and is claimed when there is room.
 */
const HOLD_MAX = 20_000;
const HOLD_MAX_BYTES = 16 * 1024 * 1024;
/** While held items wait, the outbox is still claimed this often, so due retries are not starved. */
const OUTBOX_CLAIM_EVERY_MS = 500;

/** While disabled, a running sink asks the store this often whether it still is (`ix endpoints enable`). */
const DISABLED_RECHECK_MS = 1000;

/** How long a settle nobody waits on may wait for others to share its commit (real ms). */
const LAZY_SETTLE_MS = 20;
/** A group this large commits at once. */
const LAZY_GROUP = 256;

/** Flushes attempt records and completions in groups, one commit each (group commit). */
class Settler {
  private completes: string[] = [];
  private attempts: DeliveryAttemptInput[] = [];
  private waiters: (() => void)[] = [];
  private failers: ((e: unknown) => void)[] = [];
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly store: DurableStore,
    private readonly queue: string,
    private readonly owner: string,
    /** Told when a group that nobody waits on could not be committed. */
    private readonly onLost: (err: unknown) => void,
  ) {}

  /**
   * A delivery nobody waits on (no FIFO: the slot is free once the receiver answered): its
   * record and completion commit with the next group, which waits a little for company.
   */
  deliveredLater(id: string, attempt: DeliveryAttemptInput): void {
    this.completes.push(id);
    this.attempts.push(attempt);
    this.flushing ??= this.flush();
  }

  delivered(id: string, attempt: DeliveryAttemptInput): Promise<void> {
    this.completes.push(id);
    this.attempts.push(attempt);
    return this.wait();
  }

  record(attempt: DeliveryAttemptInput): Promise<void> {
    this.attempts.push(attempt);
    return this.wait();
  }

  /** Resolves once everything handed over so far is committed (or failed). */
  settled(): Promise<void> {
    return this.flushing ?? Promise.resolve();
  }

  get busy(): boolean {
    return this.flushing !== undefined;
  }

  private wait(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiters.push(resolve);
      this.failers.push(reject);
      this.flushing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    try {
      // every settle records an attempt
      while (this.attempts.length > 0) {
        // Without a waiter the group waits a little: fewer, larger commits. A waited-for
        // settle (FIFO, a retry) goes with the next turn.
        if (this.waiters.length === 0 && this.attempts.length < LAZY_GROUP) await new Promise<void>((r) => setTimeout(r, LAZY_SETTLE_MS));
        else await new Promise<void>((r) => setImmediate(r));
        const completes = this.completes;
        const attempts = this.attempts;
        const waiters = this.waiters;
        const failers = this.failers;
        this.completes = [];
        this.attempts = [];
        this.waiters = [];
        this.failers = [];
        try {
          // one transaction: the attempts recorded and the delivered items completed
          await this.store.recordDeliveryAttempts(attempts, completes.length > 0 ? { queue: this.queue, owner: this.owner, ids: completes } : undefined);
          for (const w of waiters) w();
        } catch (err) {
          for (const f of failers) f(err);
          if (attempts.length > waiters.length) this.onLost(err);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }
}

/**
 * The `webhook` sink. `write` is a durable enqueue into the sink's outbox (a store queue): once
 * it resolves, the delivery survives a crash. A delivery worker owned by the sink claims due
 * messages, signs and POSTs them, and follows the retry schedule through the store (so attempts
 * due while the process was down run at start). Exhausted → dead letter with the reason and
 * this outbox as its replay queue, so `ix dlq replay` sends it again. Every attempt is recorded.
 */
export class WebhookSink implements Sink {
  readonly queue: string;
  private readonly owner: string;
  private readonly store: ComponentStore;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly flow: string;
  private readonly dispatcher: Dispatcher;
  private readonly breaker: CircuitBreaker;
  private readonly limiter: RateLimiter | undefined;
  private readonly settler: Settler;
  private readonly inFlight = new Set<Promise<void>>();
  /** Resolved when an in-flight delivery ends, or the sink stops (made on demand). */
  private slotFreed: { readonly promise: Promise<void>; readonly resolve: () => void } | undefined;
  /** Leased to this sink and not started yet: written by `write`, or claimed ahead (no FIFO, breaker closed). */
  private readonly prefetched = new Fifo<Held>();
  /** Body bytes of `prefetched`. */
  private heldBytes = 0;
  /** When the outbox is next claimed while held items are waiting. */
  private nextOutboxClaimAt = 0;
  private readonly requests = new Set<AttemptAbort>();
  /** Attempt deadlines: one timer for all in-flight attempts, not a timer per attempt. */
  private readonly deadlines: Deadlines;
  private readonly stop = new AbortController();
  private wakeController = new AbortController();
  private wokenOn: { readonly signal: AbortSignal; readonly promise: Promise<void> } | undefined;
  private disabled: { at: number } | undefined;
  /** When the store was last asked whether the endpoint is still disabled. */
  private disabledCheckedAt = 0;
  private fifoBlocks = new Map<string, FifoBlock>();
  private readonly loop: Promise<void>;
  /** When the attempt history is next purged (at start, then every `purgeEvery`). */
  private nextPurgeAt = 0;
  private readonly random: () => number;
  /** The endpoint's parts, taken apart once (not per delivery). */
  private readonly href: string;
  private readonly origin: string;
  private readonly path: string;
  /** Counts by outcome since start (for metrics and tests). */
  readonly counts = { delivered: 0, retried: 0, deadLettered: 0, deduplicated: 0 };

  constructor(
    private readonly s: WebhookSinkSettings,
    ctx: ComponentContext,
    options: { readonly random?: () => number; readonly pollMs?: number } = {},
  ) {
    if (!ctx.store) throw new IxError('IX_WEBHOOK_NO_STORE', { slot: 'sink' });
    this.store = ctx.store;
    this.clock = ctx.clock;
    this.logger = ctx.logger.child({ sink: ctx.name, endpoint: s.url.origin });
    this.flow = ctx.flow;
    this.queue = `outbox:${ctx.flow}:${ctx.name}`;
    // under this worker's id, so its holdings count as the worker's (`ix status`, and given back at start after a crash)
    this.owner = `${ctx.owner}/${this.queue}:${randomBytes(4).toString('hex')}`;
    this.random = options.random ?? Math.random;
    this.href = s.url.href;
    this.origin = s.url.origin;
    this.path = `${s.url.pathname}${s.url.search}`;
    this.dispatcher = new (undici().Agent)({
      connect: { lookup: s.guard.lookup, timeout: s.timeoutMs },
      connections: Math.max(s.concurrency, 1),
      headersTimeout: s.timeoutMs,
      bodyTimeout: s.timeoutMs,
      keepAliveTimeout: 10_000,
    });
    this.deadlines = new Deadlines(s.timeoutMs, () => new Error(`timed out after ${s.timeoutMs} ms`));
    this.breaker = new CircuitBreaker(ctx.clock, s.breaker.failures, s.breaker.halfOpenAfterMs);
    this.limiter = s.rateLimit ? new RateLimiter(ctx.clock, s.rateLimit) : undefined;
    this.settler = new Settler(this.store, this.queue, this.owner, (err) =>
      this.logger.warn({ err: errorMessage(err) }, 'recording a delivery failed; its lease will expire and it is sent again'),
    );
    this.loop = this.run(options.pollMs ?? 1000);
  }

  /** Keeps this outbox's attempt history within `keepAttempts`. */
  private async purgeAttempts(now: number): Promise<void> {
    this.nextPurgeAt = now + purgeEvery(this.s.keepAttemptsMs);
    try {
      const purged = await this.store.purgeDeliveryAttempts(now - this.s.keepAttemptsMs, this.queue);
      if (purged > 0) this.logger.debug({ purged }, 'purged old delivery attempts');
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, 'purging old delivery attempts failed; retrying later');
    }
  }

  private get leaseMs(): number {
    return this.s.timeoutMs + 10_000;
  }

  /** The lease of an item held before it starts: it starts within one attempt's timeout, or its lease is renewed. */
  private get aheadLeaseMs(): number {
    return this.leaseMs + this.s.timeoutMs;
  }

  /** Whether a write may hand its messages straight to the delivery worker. */
  private canHandOff(): boolean {
    return (
      !this.s.fifo &&
      (this.s.scheduleMs[0] ?? 0) <= 0 &&
      this.disabled === undefined &&
      !this.stop.signal.aborted &&
      this.breaker.state() === 'closed' &&
      this.prefetched.length < HOLD_MAX &&
      this.heldBytes < HOLD_MAX_BYTES
    );
  }

  async write(batch: Message[], _ctx?: SinkContext): Promise<void> {
    if (batch.length === 0) return;
    if (this.canHandOff()) return this.writeLeased(batch);
    const first = this.s.scheduleMs[0] ?? 0;
    const availableAt = first > 0 ? this.clock.now() + first : undefined;
    // One durable transaction: the outbox entry, and the id remembered for the dedupe window,
    // so a message the flow sends again (at-least-once upstream) is not delivered twice.
    const r = await this.store.enqueue(
      this.queue,
      batch.map((m) => ({ message: toStored(m), ...(availableAt !== undefined ? { availableAt } : {}) })),
      { dedupeTtlMs: this.s.dedupeWindowMs },
    );
    this.counts.deduplicated += batch.length - r.inserted;
    if (r.inserted > 0) this.wake();
  }

  /**
   * The durable enqueue with the messages leased to this sink in the same commit, kept for the
   * delivery worker: no claim. A crash returns them to the outbox once the lease expires; no
   * other worker can claim them before that.
   */
  private async writeLeased(batch: Message[]): Promise<void> {
    const stored = batch.map(toStored);
    const now = this.clock.now();
    const r = await this.store.enqueueLeased(
      this.queue,
      this.owner,
      stored.map((message) => ({ message })),
      { leaseMs: this.aheadLeaseMs, dedupeTtlMs: this.s.dedupeWindowMs },
    );
    this.counts.deduplicated += batch.length - r.inserted;
    if (r.inserted === 0) return;
    const held = stored.filter((_, i) => r.insertedFlags[i] === true);
    if (this.stop.signal.aborted) {
      // closed meanwhile: give them back rather than leave them leased until the expiry
      await this.store.release(this.queue, this.owner, held.map((m) => m.id));
      return;
    }
    const until = now + this.aheadLeaseMs;
    for (const message of held) {
      const body = requestBody(message);
      this.heldBytes += body.length;
      this.prefetched.push({ item: { queue: this.queue, message, attempts: 0, enqueuedAt: now }, until, body });
    }
    this.wake();
  }

  /** Stops the worker; in-flight attempts are abandoned and their messages released (not counted). */
  async close(): Promise<void> {
    if (this.stop.signal.aborted) return;
    this.stop.abort();
    this.wakeController.abort();
    this.freeSlot();
    for (const c of this.requests) c.abort();
    await this.loop;
    await Promise.allSettled([...this.inFlight]);
    if (this.prefetched.length > 0) await this.releasePrefetched().catch(() => undefined); // the lease would expire anyway
    await this.settler.settled();
    await this.dispatcher.close();
  }

  /** Resolves once nothing is in flight (tests). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0 || this.settler.busy) await Promise.allSettled([...this.inFlight, this.settler.settled()]);
  }

  private wake(): void {
    this.wakeController.abort();
  }

  /** Sleeps until `ms` passed, `wake()` was called since the tick began, or the sink stops. */
  private async sleep(ms: number): Promise<void> {
    try {
      // close() aborts the wake controller too
      await this.clock.sleep(Math.max(0, ms), this.wakeController.signal);
    } catch {
      // woken early: there is new work, or we are stopping
    }
  }

  private async loadState(): Promise<void> {
    const d = await this.store.getCheckpoint(disabledKey(this.queue, this.href));
    if (d) this.disabled = JSON.parse(d) as { at: number };
    if (this.s.fifo) {
      const f = await this.store.getCheckpoint(`${this.queue}:fifo`);
      if (f) this.fifoBlocks = new Map(Object.entries(JSON.parse(f) as Record<string, FifoBlock>));
    }
  }

  private async run(pollMs: number): Promise<void> {
    try {
      await this.loadState();
    } catch (err) {
      this.logger.error({ err: errorMessage(err) }, 'webhook sink could not read its state');
    }
    while (!this.stop.signal.aborted) {
      try {
        await this.tick(pollMs);
      } catch (err) {
        this.logger.error({ err: errorMessage(err) }, 'webhook delivery worker error; retrying');
        await this.sleep(1000);
      }
    }
  }

  private async tick(pollMs: number): Promise<void> {
    // A woken sleep leaves the controller aborted; a fresh one for the next wait.
    if (this.wakeController.signal.aborted) this.wakeController = new AbortController();
    if (this.stop.signal.aborted) return;
    if (this.clock.now() >= this.nextPurgeAt) await this.purgeAttempts(this.clock.now());
    const state = this.breaker.state();
    if (state !== 'closed' && this.prefetched.length > 0) await this.releasePrefetched();
    if (state === 'open') {
      await this.sleep(this.breaker.retryAt() - this.clock.now());
      return;
    }
    const room = state === 'half-open' ? (this.inFlight.size === 0 ? 1 : 0) : this.s.concurrency - this.inFlight.size;
    // Claim in batches: while deliveries are in flight, wait until half of the slots are free.
    if (room <= 0 || (this.inFlight.size > 0 && room < Math.ceil(this.s.concurrency / 2))) {
      await this.freed();
      return;
    }
    let items: Held[];
    const now = this.clock.now();
    if (this.prefetched.length > 0) {
      // Held items first; now and then the outbox too (retries come due there, and what a
      // write did not hold), then the held items fill what it left free.
      items = [];
      if (now >= this.nextOutboxClaimAt) {
        items = (await this.store.claim(this.queue, this.owner, { limit: room, leaseMs: this.leaseMs })).map((item) => ({ item, until: now + this.leaseMs }));
        if (items.length < room) this.nextOutboxClaimAt = now + OUTBOX_CLAIM_EVERY_MS;
      }
      if (items.length < room) items.push(...(await this.takeHeld(room - items.length)));
    } else if (state === 'closed' && !this.s.fifo) {
      // One claim fills the free slots and as many again, kept for the next free slots: half
      // the claims. A kept item starts within one attempt's timeout, so its lease covers two.
      const until = now + this.aheadLeaseMs;
      items = (await this.store.claim(this.queue, this.owner, { limit: room + this.s.concurrency, leaseMs: this.aheadLeaseMs })).map((item) => ({ item, until }));
      for (const h of items.splice(room)) this.prefetched.push(h);
      this.nextOutboxClaimAt = now + OUTBOX_CLAIM_EVERY_MS;
    } else items = (await this.store.claim(this.queue, this.owner, { limit: room, leaseMs: this.leaseMs })).map((item) => ({ item, until: now + this.leaseMs }));
    if (items.length === 0) {
      if (this.prefetched.length > 0) return;
      if (this.inFlight.size > 0) {
        await Promise.race([this.freed(), this.woken()]);
        return;
      }
      const next = await this.store.nextAvailableAt(this.queue);
      const now = this.clock.now();
      await this.sleep(next === undefined ? pollMs : Math.min(pollMs, Math.max(0, next - now)));
      return;
    }
    if (state === 'half-open' && !this.breaker.tryTrial()) {
      await this.store.release(this.queue, this.owner, items.map((i) => i.item.message.id));
      return;
    }
    for (const chain of this.chains(items)) this.track(this.runChain(chain));
  }

  /**
   * Up to `n` held items to start now. One whose lease could run out during its attempt is
   * renewed first (with every held item near that point, in one statement); one whose lease
   * is lost is dropped: whoever holds it now sends it.
   */
  private async takeHeld(n: number): Promise<Held[]> {
    const taken = this.prefetched.take(n);
    for (const h of taken) if (h.body) this.heldBytes -= h.body.length;
    const now = this.clock.now();
    if (taken.every((h) => h.until - now >= this.leaseMs)) return taken;
    const due = [...taken, ...this.prefetched].filter((h) => h.until - now < this.leaseMs * 2);
    const held = new Set(await this.store.extendLease(this.queue, this.owner, due.map((h) => h.item.message.id), this.aheadLeaseMs));
    const lost = new Set<Held>();
    for (const h of due) {
      if (held.has(h.item.message.id)) h.until = now + this.aheadLeaseMs;
      else lost.add(h);
    }
    if (lost.size > 0) {
      this.logger.warn({ lost: lost.size }, 'leases of held webhook deliveries ran out before they started; left to their new holder');
      this.prefetched.retain((h) => !lost.has(h));
      this.heldBytes = 0;
      for (const h of this.prefetched) this.heldBytes += h.body?.length ?? 0;
    }
    return taken.filter((h) => !lost.has(h));
  }

  /** Resolves when a delivery slot is freed or the sink stops: one promise for every waiter, not a race over the in-flight set. */
  private freed(): Promise<void> {
    if (this.stop.signal.aborted) return Promise.resolve();
    if (!this.slotFreed) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.slotFreed = { promise, resolve };
    }
    return this.slotFreed.promise;
  }

  private freeSlot(): void {
    const f = this.slotFreed;
    this.slotFreed = undefined;
    f?.resolve();
  }

  /** Resolves when the current wake signal fires: one promise (one listener) per signal, however often the loop waits on it. */
  private woken(): Promise<void> {
    const signal = this.wakeController.signal;
    if (this.wokenOn?.signal === signal) return this.wokenOn.promise;
    const promise = new Promise<void>((r) => {
      if (signal.aborted) r();
      else signal.addEventListener('abort', () => r(), { once: true });
    });
    this.wokenOn = { signal, promise };
    return promise;
  }

  /** Gives claimed items not started yet back to the outbox (breaker not closed, stopping). */
  private async releasePrefetched(): Promise<void> {
    const ids = this.prefetched.drain().map((h) => h.item.message.id);
    this.heldBytes = 0;
    await this.store.release(this.queue, this.owner, ids);
  }

  private track(p: Promise<void>): void {
    const t = p.catch((err: unknown) => this.logger.error({ err: errorMessage(err) }, 'webhook delivery failed unexpectedly')).finally(() => {
        this.inFlight.delete(t);
        this.freeSlot();
      });
    this.inFlight.add(t);
  }

  /** Without FIFO each message is its own chain; with FIFO, messages of one key run in order. */
  private chains(items: Held[]): Held[][] {
    if (!this.s.fifo) return items.map((i) => [i]);
    const byKey = new Map<string, Held[]>();
    const out: Held[][] = [];
    for (const item of items) {
      const key = item.item.message.key;
      if (key === undefined) {
        out.push([item]);
        continue;
      }
      const c = byKey.get(key);
      if (c) c.push(item);
      else {
        const chain = [item];
        byKey.set(key, chain);
        out.push(chain);
      }
    }
    return out;
  }

  private async runChain(chain: Held[]): Promise<void> {
    for (let i = 0; i < chain.length; i++) {
      const held = chain[i] as Held;
      const item = held.item;
      const key = item.message.key;
      const block = this.s.fifo && key !== undefined ? this.fifoBlocks.get(key) : undefined;
      if (block && block.id !== item.message.id) {
        // An earlier message of this key waits for a retry: this one waits behind it.
        for (const later of chain.slice(i)) {
          await this.store.retry(this.queue, this.owner, later.item.message.id, { availableAt: block.until + 1, countAttempt: false });
        }
        return;
      }
      const ok = await this.deliver(item, held.body);
      if (!ok && this.s.fifo && key !== undefined && this.fifoBlocks.has(key)) {
        const b = this.fifoBlocks.get(key) as FifoBlock;
        for (const later of chain.slice(i + 1)) {
          await this.store.retry(this.queue, this.owner, later.item.message.id, { availableAt: b.until + 1, countAttempt: false });
        }
        return;
      }
    }
  }

  private async setFifoBlock(key: string, block: FifoBlock | undefined): Promise<void> {
    if (block) this.fifoBlocks.set(key, block);
    else if (!this.fifoBlocks.delete(key)) return;
    await this.store.setCheckpoint(`${this.queue}:fifo`, JSON.stringify(Object.fromEntries(this.fifoBlocks)));
  }

  /** Whether the endpoint is still disabled: the store is asked at most once a second. */
  private async stillDisabled(): Promise<boolean> {
    const now = this.clock.now();
    if (now - this.disabledCheckedAt < DISABLED_RECHECK_MS) return true;
    this.disabledCheckedAt = now;
    try {
      if ((await this.store.getCheckpoint(disabledKey(this.queue, this.href))) !== undefined) return true;
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, 'could not read whether the endpoint is still disabled; it stays disabled');
      return true;
    }
    this.disabled = undefined;
    this.logger.info({ url: this.s.url.origin }, 'endpoint enabled again (its 410 mark was removed): delivering');
    return false;
  }

  /** One attempt; true when delivered. */
  private async deliver(item: DurableQueueItem, body: Buffer | undefined): Promise<boolean> {
    const msg = item.message;
    const attempt = item.attempts + 1;
    if (this.limiter) await this.limiter.take(this.stop.signal).catch(() => undefined);
    if (this.stop.signal.aborted) {
      await this.store.release(this.queue, this.owner, [msg.id]);
      return false;
    }
    const at = this.clock.now();
    const base: AttemptBase = { flow: this.flow, outbox: this.queue, messageId: msg.id, attempt, url: this.href, at };
    if (this.disabled && (await this.stillDisabled())) {
      const reason = new IxError('IX_WEBHOOK_DISABLED', { url: this.s.url.origin, at: new Date(this.disabled.at).toISOString() }).message;
      await this.deadLetter(item, reason, attempt - 1);
      await this.settler.record({ ...base, latencyMs: 0, outcome: 'disabled', error: reason });
      return false;
    }

    const r = await this.attempt(msg, body ?? requestBody(msg));
    if (r === undefined) {
      // stopping: abandoned, not counted
      await this.store.release(this.queue, this.owner, [msg.id]);
      return false;
    }
    const status = r.status;

    if (status !== undefined && status >= 200 && status < 300) {
      this.breaker.success();
      this.counts.delivered++;
      if (!this.s.fifo) {
        // The slot is free once the receiver answered: the record and the completion commit
        // with the next group (the lease holds the item meanwhile; a crash before that commit
        // means a redelivery, at-least-once). Under FIFO the next of a key waits for it.
        this.settler.deliveredLater(msg.id, attemptRecord(base, r, 'delivered'));
        return true;
      }
      await this.settler.delivered(msg.id, attemptRecord(base, r, 'delivered'));
      if (msg.key !== undefined && this.fifoBlocks.get(msg.key)?.id === msg.id) await this.setFifoBlock(msg.key, undefined);
      return true;
    }

    const reason = status !== undefined ? `HTTP ${status}${r.excerpt ? `: ${r.excerpt.slice(0, 200)}` : ''}` : (r.error ?? 'no answer');
    if (status === 410) {
      this.disabled = { at };
      this.disabledCheckedAt = at;
      await this.store.setCheckpoint(disabledKey(this.queue, this.href), JSON.stringify(this.disabled));
      this.logger.warn({ url: this.s.url.origin }, 'endpoint answered 410 Gone: disabled; its deliveries are dead-lettered');
      await this.deadLetter(item, `endpoint answered 410 Gone and is disabled`, attempt);
      await this.settler.record(attemptRecord(base, r, 'disabled'));
      return false;
    }
    if (status === undefined || status >= 500 || status === 429 || status === 408) this.breaker.failure();
    else this.breaker.success(); // the endpoint is up; this message is the problem

    const delay = r.permanent ? undefined : scheduledDelay(this.s.scheduleMs, attempt, this.s.jitter, this.random);
    if (delay === undefined) {
      await this.deadLetter(item, r.permanent ? reason : `gave up after ${attempt} attempts; last: ${reason}`, attempt);
      await this.settler.record(attemptRecord(base, r, 'dead-letter'));
      return false;
    }
    let wait = delay;
    if (status !== undefined && RETRY_AFTER_STATUSES.has(status) && r.retryAfterMs !== undefined) wait = Math.min(r.retryAfterMs, this.s.maxRetryAfterMs);
    const nextAt = this.clock.now() + wait;
    this.counts.retried++;
    await this.settler.record(attemptRecord(base, r, 'retry', nextAt));
    await this.store.retry(this.queue, this.owner, msg.id, { availableAt: nextAt, error: reason });
    if (this.s.fifo && msg.key !== undefined) await this.setFifoBlock(msg.key, { id: msg.id, until: nextAt });
    return false;
  }

  private async deadLetter(item: DurableQueueItem, reason: string, attempts: number): Promise<void> {
    await this.store.deadLetter([{ flow: this.flow, message: item.message, stage: 'sink:webhook', reason, attempts, replayQueue: this.queue }]);
    await this.store.complete(this.queue, this.owner, [item.message.id]);
    this.counts.deadLettered++;
    this.logger.warn({ id: item.message.id, reason }, 'webhook dead-lettered');
    const key = item.message.key;
    if (this.s.fifo && key !== undefined && this.fifoBlocks.get(key)?.id === item.message.id) await this.setFifoBlock(key, undefined);
  }

  /** Sends one signed request; undefined when abandoned because the sink is stopping. */
  private async attempt(msg: StoredMessage, body: Buffer): Promise<AttemptResult | undefined> {
    const headers: Record<string, string> = {
      'content-type': typeof msg.payload === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
      'user-agent': 'Interchange-Webhooks/1',
      ...this.s.headers,
      ...this.s.signer(msg.id, body, this.clock.now()),
    };
    const controller = this.deadlines.start();
    this.requests.add(controller);
    const started = performance.now();
    try {
      // the excerpt is kept; the rest of the answer is read and dropped (the connection stays
      // open for the next delivery) unless it runs past EXCERPT_DRAIN_BYTES
      const res = await exchange(this.dispatcher, {
        origin: this.origin,
        path: this.path,
        method: this.s.method,
        headers,
        body,
        keepBytes: this.s.excerptBytes,
        maxBytes: Math.max(EXCERPT_DRAIN_BYTES, this.s.excerptBytes),
        tooLarge: 'truncate',
        abort: controller,
      });
      const out: AttemptResult = { status: res.statusCode, latencyMs: performance.now() - started };
      if (res.text !== '') out.excerpt = res.text;
      const ra = parseRetryAfter(res.headers['retry-after'], this.clock.now());
      if (ra !== undefined) out.retryAfterMs = ra;
      return out;
    } catch (err) {
      if (this.stop.signal.aborted) return undefined;
      const e = err as { code?: string; cause?: { code?: string; message?: string } };
      const refused = e.code === 'IX_SSRF_REFUSED' || e.cause?.code === 'IX_SSRF_REFUSED';
      const text = refused
        ? new IxError('IX_WEBHOOK_SSRF', { url: this.s.url.origin, detail: errorMessage(e.cause ?? err).replace(/^SSRF guard refused [^:]+: /, '') }).message
        : controller.timedOut
          ? `timed out after ${this.s.timeoutMs} ms`
          : `${e.code ?? e.cause?.code ?? 'network error'}: ${errorMessage(err)}`;
      return { error: text, latencyMs: performance.now() - started, ...(refused ? { permanent: true } : {}) };
    } finally {
      this.deadlines.finish(controller);
      this.requests.delete(controller);
    }
  }
}

/**
 * The record of an attempt that ran: one literal of one shape (the store takes an undefined
 * field as absent), no spreads or added fields on the path every delivery takes.
 */
function attemptRecord(base: AttemptBase, r: AttemptResult, outcome: DeliveryOutcome, nextAt?: number): DeliveryAttemptInput {
  return {
    flow: base.flow,
    outbox: base.outbox,
    messageId: base.messageId,
    attempt: base.attempt,
    url: base.url,
    at: base.at,
    latencyMs: r.latencyMs,
    status: r.status,
    responseExcerpt: r.excerpt,
    error: r.error,
    outcome,
    nextAt,
  };
}

/** Bytes of an answer read past its excerpt before the connection is closed instead. */
const EXCERPT_DRAIN_BYTES = 1024 * 1024;

/** What a delivery sends: a string payload as it is, anything else as JSON. */
function requestBody(msg: StoredMessage): Buffer {
  return Buffer.from(typeof msg.payload === 'string' ? msg.payload : JSON.stringify(msg.payload ?? null));
}

