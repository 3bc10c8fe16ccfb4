import type { Clock } from '../core/clock.js';

/** One rate: `count` events per `perMs`, with an optional burst (GCRA tolerance). */
export interface RateSpec {
  readonly count: number;
  readonly perMs: number;
  readonly burst?: number;
}

/**
 * Where rate reservations are made. The Store port implements it (shared by every process on
 * the store); `MemoryRateGate` is the in-process fallback with the same algorithm.
 */
export interface RateGate {
  /** Reserves the next slot; resolves to the ms the caller must wait first (0: now). */
  acquireRate(key: string, limit: RateSpec): Promise<number>;
  /**
   * Reserves the next slot when that needs no asynchronous work (a slot of a block already
   * leased from the store): the ms to wait first; undefined when `acquireRate` must be used.
   */
  tryAcquireRate?(key: string, limit: RateSpec): number | undefined;
}

/** GCRA in memory, the same arithmetic as the SQLite store. */
export class MemoryRateGate implements RateGate {
  private readonly tats = new Map<string, number>();
  constructor(private readonly clock: Clock) {}

  acquireRate(key: string, limit: RateSpec): Promise<number> {
    return Promise.resolve(this.tryAcquireRate(key, limit));
  }

  tryAcquireRate(key: string, limit: RateSpec): number {
    const now = this.clock.now();
    const interval = limit.perMs / limit.count;
    const tolerance = (Math.max(1, limit.burst ?? 1) - 1) * interval;
    const tat = Math.max(this.tats.get(key) ?? now, now);
    this.tats.set(key, tat + interval);
    return roundWait(tat - tolerance - now, interval);
  }
}

/**
 * A wait in whole milliseconds (the clock's resolution). Below one millisecond a limit that
 * allows several calls per millisecond lets the call go at once rather than sleep a whole
 * millisecond: the schedule stays within one clock tick of exact.
 */
function roundWait(ms: number, interval: number): number {
  if (ms <= 0) return 0;
  if (ms < 1 && interval < 1) return 0;
  return Math.ceil(ms);
}

interface Block {
  /** Next free slot time in this process's reserved span. */
  cursor: number;
  /** End of the span (exclusive). */
  end: number;
  pending: Promise<void> | undefined;
}

/**
 * Reserves rate slots from a shared gate (the Store) in blocks of `blockMs` worth of calls and
 * hands them out in this process, so a high limit costs one store write per block instead of
 * one per call. The block's span is reserved in the store like one big call, so other
 * processes schedule after it; inside the span this process spaces calls evenly (GCRA without
 * tolerance) and lets unused slots lapse rather than bunch. Limits too low to fill two slots
 * per block, or with a burst, reserve per call.
 */
export class BlockRateGate implements RateGate {
  private readonly blocks = new Map<string, Block>();
  constructor(
    private readonly shared: RateGate,
    private readonly clock: Clock,
    /** @defaultValue 200 */
    private readonly blockMs = 200,
  ) {}

  async acquireRate(key: string, limit: RateSpec): Promise<number> {
    const interval = limit.perMs / limit.count;
    const size = Math.floor(this.blockMs / interval);
    if (size < 2 || (limit.burst ?? 1) > 1) return this.shared.acquireRate(key, limit);
    const block = this.block(key);
    for (;;) {
      const wait = this.fromBlock(block, interval);
      if (wait !== undefined) return wait;
      block.pending ??= this.reserve(block, key, limit, size, interval);
      await block.pending;
    }
  }

  /** A slot of the block this process holds, without a store round trip; undefined: none left. */
  tryAcquireRate(key: string, limit: RateSpec): number | undefined {
    const interval = limit.perMs / limit.count;
    if (Math.floor(this.blockMs / interval) < 2 || (limit.burst ?? 1) > 1) return undefined;
    return this.fromBlock(this.block(key), interval);
  }

  private block(key: string): Block {
    let block = this.blocks.get(key);
    if (!block) {
      block = { cursor: 0, end: 0, pending: undefined };
      this.blocks.set(key, block);
    }
    return block;
  }

  private fromBlock(block: Block, interval: number): number | undefined {
    const now = this.clock.now();
    const at = Math.max(block.cursor, now);
    if (at + interval > block.end) return undefined;
    block.cursor = at + interval;
    return roundWait(at - now, interval);
  }

  private async reserve(block: Block, key: string, limit: RateSpec, size: number, interval: number): Promise<void> {
    try {
      // Both stores read their clock synchronously when called, so `now` is theirs too: the block
      // is [now + wait, now + wait + size·interval), exact to the clock tick they round waits to.
      const now = this.clock.now();
      const wait = await this.shared.acquireRate(key, { count: limit.count / size, perMs: limit.perMs });
      block.cursor = now + wait;
      block.end = now + wait + size * interval;
    } finally {
      block.pending = undefined;
    }
  }
}

/**
 * Waits for a turn under one rate limit. Calls are never dropped: each reserves its slot in
 * order and sleeps (on the injected clock) until it comes. Returns the ms waited.
 */
export async function waitForRate(gate: RateGate, clock: Clock, key: string, limit: RateSpec, signal?: AbortSignal): Promise<number> {
  const wait = await gate.acquireRate(key, limit);
  if (wait > 0) await clock.sleep(wait, signal);
  return wait;
}

/**
 * `waitForRate` without a promise when the gate has a slot at hand that is due now (the
 * per-call fast path): returns 0 then, else a promise of the ms waited.
 */
export function takeRate(gate: RateGate, clock: Clock, key: string, limit: RateSpec, signal?: AbortSignal): number | Promise<number> {
  const wait = gate.tryAcquireRate?.(key, limit);
  if (wait === 0) return 0;
  if (wait === undefined) return waitForRate(gate, clock, key, limit, signal);
  return clock.sleep(wait, signal).then(() => wait);
}

/**
 * The last `count` send times per bucket, in this process. GCRA spaces reservations evenly,
 * but a stalled event loop wakes several reserved calls at once; this log holds back a send
 * until the one `count` sends earlier is `perMs` old, so no window of `perMs` ever sees more
 * than `count` sends from this process. Limits above `maxTracked` per window skip the log.
 */
export class SendLog {
  private readonly logs = new Map<string, { times: Float64Array; next: number }>();
  constructor(
    private readonly clock: Clock,
    private readonly maxTracked = 10_000,
  ) {}

  /** Lets a send go: undefined when it may go now, else a promise that resolves when it may. */
  admit(key: string, limit: RateSpec, signal?: AbortSignal): Promise<void> | undefined {
    const size = Math.ceil(limit.count);
    if (size > this.maxTracked) return undefined;
    let log = this.logs.get(key);
    if (!log || log.times.length !== size) {
      log = { times: new Float64Array(size).fill(Number.NEGATIVE_INFINITY), next: 0 };
      this.logs.set(key, log);
    }
    const wait = this.record(log, limit.perMs, size);
    return wait === 0 ? undefined : this.admitLater(log, limit.perMs, size, wait, signal);
  }

  /** Records a send due now and returns 0, or returns the ms until one may go. */
  private record(log: { times: Float64Array; next: number }, perMs: number, size: number): number {
    const now = this.clock.now();
    const wait = (log.times[log.next] as number) + perMs - now;
    if (wait > 0) return wait;
    log.times[log.next] = now;
    log.next = (log.next + 1) % size;
    return 0;
  }

  private async admitLater(log: { times: Float64Array; next: number }, perMs: number, size: number, wait: number, signal: AbortSignal | undefined): Promise<void> {
    while (wait > 0) {
      await this.clock.sleep(Math.ceil(wait), signal);
      wait = this.record(log, perMs, size);
    }
  }
}
