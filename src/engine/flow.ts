import type { Clock } from '../core/clock.js';
import { Outcome, RESUME_AFTER_STEP, type Ack, type BatchOutcome, type Sink, type SinkContext, type Step, type SettledEntry, type StepContext, type StepResult } from '../core/component.js';
import { errorMessage, isRetryable, IxError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { toStored, type Message } from '../core/message.js';
import type { DeadLetterInput, Store } from '../store/types.js';
import type { Backoff } from './backoff.js';
import type { EngineMetrics } from './metrics.js';

export interface FlowStats {
  in: number;
  out: number;
  failed: number;
  deadLettered: number;
  filtered: number;
}

export interface BuiltStep {
  readonly name: string;
  readonly kind: string;
  readonly step: Step;
  readonly ctx: StepContext;
}

export interface BuiltSink {
  readonly name: string;
  readonly kind: string;
  readonly sink: Sink;
  readonly ctx: SinkContext;
}

export interface FlowRunnerOptions {
  readonly name: string;
  readonly steps: readonly BuiltStep[];
  readonly sinks: readonly BuiltSink[];
  readonly concurrency: number;
  /**
   * Per-key order: the ordering key of a message (undefined: none). Messages with one key
   * are processed and handed to the sinks one after another, in arrival order; a message
   * being retried holds back the later ones of its key; different keys run concurrently.
   */
  readonly orderKey?: ((msg: Message) => string | undefined) | undefined;
  readonly backoff: Backoff;
  readonly deadLetter: boolean;
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: EngineMetrics;
  /** Aborted when in-flight work must be abandoned (shutdown past its drain deadline). */
  readonly hardStop: AbortSignal;
  /** Called when the flow cannot go on (dead-lettering disabled and a message exhausted its retries). */
  onFatal(err: Error): void;
}

interface Routed {
  readonly msg: Message;
  readonly origin: number;
}

/** A batch emitted under per-key order: it settles when each of its messages has. */
interface Ticket {
  readonly outcomes: Outcome[];
  remaining: number;
  done: boolean;
  resolve(o: BatchOutcome): void;
  reject(err: unknown): void;
}

/** One message waiting in (or at the head of) its key's lane. */
interface Slot {
  readonly msg: Message;
  readonly ticket: Ticket;
  readonly index: number;
}

/** Called by a batch run as soon as one message settled (before the rest of its batch). */
type Release = (origin: number, outcome: Outcome) => void;

function summarize(outcomes: readonly Outcome[]): BatchOutcome {
  let delivered = 0;
  let filtered = 0;
  let deadLettered = 0;
  for (const o of outcomes) {
    if (o === Outcome.Delivered) delivered++;
    else if (o === Outcome.Filtered) filtered++;
    else deadLettered++;
  }
  return { outcomes, delivered, filtered, deadLettered };
}

function isPromise<T>(v: unknown): v is Promise<T> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Runs batches through a flow's steps and sinks with bounded concurrency. Each batch's
 * `settled` resolves when every message derived from it has been accepted by every sink,
 * dead-lettered or filtered; the counters add up: in = out + deadLettered + filtered.
 */
export class FlowRunner {
  readonly name: string;
  readonly stats: FlowStats = { in: 0, out: 0, failed: 0, deadLettered: 0, filtered: 0 };
  private readonly o: FlowRunnerOptions;
  private inFlight = 0;
  private readonly waiters: (() => void)[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private readonly mIn;
  private readonly mOut;
  private readonly mFailed;
  private readonly mDead;
  private readonly mFiltered;
  private readonly mInFlight;
  private readonly mSink;

  /** Per step: whether it has a `settled` hook. */
  private readonly hooked: readonly boolean[];

  // Per-key order: queued messages by key (the head is running while its key is busy).
  private readonly lanes = new Map<string, Slot[]>();
  private readonly busyLanes = new Set<string>();
  /** Keys whose head can start, oldest first. */
  private readonly readyLanes: string[] = [];
  private waves = 0;
  private unkeyed = 0;

  constructor(options: FlowRunnerOptions) {
    this.o = options;
    this.hooked = options.steps.map((s) => typeof s.step.settled === 'function');
    this.name = options.name;
    const m = options.metrics;
    this.mIn = m.messagesIn.labels(this.name);
    this.mOut = m.messagesOut.labels(this.name);
    this.mFailed = m.messagesFailed.labels(this.name);
    this.mDead = m.messagesDeadLettered.labels(this.name);
    this.mFiltered = m.messagesFiltered.labels(this.name);
    this.mInFlight = m.inFlight.labels(this.name);
    this.mSink = options.sinks.map((s) => m.sinkWritten.labels(this.name, s.name));
  }

  get busy(): number {
    return this.inFlight;
  }

  /** Resolves once a batch could be taken without waiting: a source reads its next batch then. */
  async room(): Promise<void> {
    while (this.inFlight >= this.o.concurrency) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Takes a batch once there is room (backpressure); the returned ack settles later. */
  async emit(batch: Message[]): Promise<Ack> {
    await this.room();
    if (this.o.hardStop.aborted) throw new IxError('IX_ENGINE_SHUTDOWN');
    this.inFlight++;
    this.mInFlight.inc();
    const settled = (this.o.orderKey ? this.enqueue(batch, this.o.orderKey) : this.process(batch)).finally(() => {
      this.inFlight--;
      this.mInFlight.dec();
      this.waiters.shift()?.();
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
    settled.catch(() => undefined);
    return { settled };
  }

  /** Resolves when no batch is in flight. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Per-key order: queues the batch's messages in their keys' lanes; settles when all did. */
  private enqueue(batch: Message[], keyOf: (msg: Message) => string | undefined): Promise<BatchOutcome> {
    if (batch.length === 0) return Promise.resolve(summarize([]));
    return new Promise<BatchOutcome>((resolve, reject) => {
      const ticket: Ticket = { outcomes: new Array<Outcome>(batch.length), remaining: batch.length, done: false, resolve, reject };
      for (const [index, msg] of batch.entries()) {
        let key: string | undefined;
        try {
          key = keyOf(msg);
        } catch {
          key = undefined; // No key: unordered (an expression that fails on this message).
        }
        // A message without a key waits for nobody: it gets a lane of its own.
        const lane = key === undefined ? `\u0000${this.unkeyed++}` : `k:${key}`;
        let queue = this.lanes.get(lane);
        if (!queue) {
          this.lanes.set(lane, (queue = []));
          this.readyLanes.push(lane);
        }
        queue.push({ msg, ticket, index });
      }
      this.pump();
    });
  }

  /** Starts batches of lane heads (one message per key) while there is room. */
  private pump(): void {
    while (this.waves < this.o.concurrency && this.readyLanes.length > 0) {
      const keys = this.readyLanes.splice(0);
      const heads: Slot[] = [];
      for (const key of keys) {
        this.busyLanes.add(key);
        heads.push((this.lanes.get(key) as Slot[])[0] as Slot);
      }
      const released = new Uint8Array(heads.length);
      const advance = (i: number, outcome: Outcome): void => {
        if (released[i] === 1) return;
        released[i] = 1;
        const key = keys[i] as string;
        const queue = this.lanes.get(key) as Slot[];
        const slot = queue.shift() as Slot;
        this.busyLanes.delete(key);
        if (queue.length > 0) this.readyLanes.push(key);
        else this.lanes.delete(key);
        const t = slot.ticket;
        if (t.done) return;
        t.outcomes[slot.index] = outcome;
        if (--t.remaining === 0) {
          t.done = true;
          t.resolve(summarize(t.outcomes));
        }
      };
      this.waves++;
      this.process(
        heads.map((h) => h.msg),
        (origin, outcome) => {
          advance(origin, outcome);
          this.pump();
        },
      )
        .then(
          (res) => {
            for (let i = 0; i < heads.length; i++) advance(i, res.outcomes[i] as Outcome);
          },
          (err: unknown) => {
            // The batch failed as a whole: what waits behind its unsettled messages fails too
            // (it will be delivered again after them), so no later message overtakes them.
            for (let i = 0; i < heads.length; i++) {
              if (released[i] === 1) continue;
              released[i] = 1;
              const key = keys[i] as string;
              for (const slot of this.lanes.get(key) ?? []) {
                if (!slot.ticket.done) {
                  slot.ticket.done = true;
                  slot.ticket.reject(err);
                }
              }
              this.lanes.delete(key);
              this.busyLanes.delete(key);
            }
          },
        )
        .finally(() => {
          this.waves--;
          this.pump();
        });
    }
  }

  private async process(batch: Message[], release?: Release): Promise<BatchOutcome> {
    const n = batch.length;
    this.stats.in += n;
    this.mIn.inc(n);
    // What steps with a `settled` hook passed on, by step index, with the origin.
    const passed = new Map<number, { origin: number; msg: Message }[]>();
    let result: BatchOutcome;
    try {
      result = await this.runBatch(batch, passed, release);
    } catch (err) {
      // The batch will be delivered again: the hooks learn their messages did not settle.
      await this.settle(passed, undefined).catch((e: unknown) => this.o.logger.warn({ flow: this.name, err: errorMessage(e) }, 'step settled hook failed'));
      throw err;
    }
    await this.settle(passed, result.outcomes);
    const { delivered, filtered, deadLettered } = result;
    this.stats.out += delivered;
    this.stats.filtered += filtered;
    this.stats.deadLettered += deadLettered;
    if (delivered) this.mOut.inc(delivered);
    if (filtered) this.mFiltered.inc(filtered);
    if (deadLettered) this.mDead.inc(deadLettered);
    return result;
  }

  /** Tells steps with a `settled` hook how the messages they passed on ended. */
  private async settle(passed: Map<number, { origin: number; msg: Message }[]>, outcomes: readonly Outcome[] | undefined): Promise<void> {
    if (passed.size === 0) return;
    await Promise.all(
      [...passed].map(([s, list]) => {
        const st = this.o.steps[s] as BuiltStep;
        const entries: SettledEntry[] = list.map(({ origin, msg }) => ({ msg, outcome: outcomes?.[origin] }));
        return (st.step.settled as NonNullable<BuiltStep['step']['settled']>)(entries, st.ctx);
      }),
    );
  }

  private async runBatch(batch: Message[], passed: Map<number, { origin: number; msg: Message }[]>, release?: Release): Promise<BatchOutcome> {
    const n = batch.length;
    // Steps with a settled hook see which batch a message belongs to.
    const token = {};
    const ctxs = this.o.steps.map((st, s) => (this.hooked[s] ? (Object.create(st.ctx, { batch: { value: token } }) as StepContext) : st.ctx));
    const produced = new Uint32Array(n);
    const dead: (DeadLetterInput & { origin: number })[] = [];
    const routed: Routed[] = [];
    const pending: Promise<void>[] = [];
    const note = (s: number, origin: number, result: StepResult): void => {
      if (result === null || result === undefined || !this.hooked[s]) return;
      let list = passed.get(s);
      if (!list) passed.set(s, (list = []));
      if (Array.isArray(result)) for (const msg of result) list.push({ origin, msg });
      else list.push({ origin, msg: result });
    };

    // Steps: synchronous steps run inline; a step that returns a promise continues async.
    const run = (msg: Message, from: number, origin: number): void => {
      const steps = this.o.steps;
      let current = msg;
      for (let s = from; s < steps.length; s++) {
        const st = steps[s] as BuiltStep;
        let result: StepResult | Promise<StepResult>;
        try {
          result = st.step.process(current, ctxs[s] as StepContext);
        } catch (err) {
          pending.push(this.retryStep(current, s, origin, err, batch, dead, run, note, ctxs[s] as StepContext));
          return;
        }
        if (isPromise<StepResult>(result)) {
          const at = s;
          const input = current;
          pending.push(
            result.then(
              (r) => {
                note(at, origin, r);
                this.continueWith(r, at + 1, origin, run);
              },
              (err: unknown) => this.retryStep(input, at, origin, err, batch, dead, run, note, ctxs[at] as StepContext),
            ),
          );
          return;
        }
        note(s, origin, result);
        if (result === null || result === undefined) return;
        if (Array.isArray(result)) {
          for (const child of result) run(child, s + 1, origin);
          return;
        }
        current = result;
      }
      routed.push({ msg: current, origin });
      produced[origin] = (produced[origin] as number) + 1;
    };

    for (let i = 0; i < n; i++) {
      const msg = batch[i] as Message;
      if (msg.error !== undefined) {
        dead.push({ origin: i, flow: this.name, message: toStored(msg), stage: 'source', reason: msg.error, attempts: 1 });
        continue;
      }
      const resume = msg.meta[RESUME_AFTER_STEP];
      if (typeof resume === 'number') {
        // Made by a step on its own (forward): continues after that step, without the marker.
        const { [RESUME_AFTER_STEP]: _r, ...meta } = msg.meta;
        run({ ...msg, meta }, resume + 1, i);
      } else run(msg, 0, i);
    }
    while (pending.length > 0) await Promise.all(pending.splice(0));

    // Under per-key order, a message is released as soon as every sink accepted what it
    // produced (or it produced nothing), so the next of its key need not wait for the
    // batch's retries. Dead letters are released with the batch, once they are stored.
    let accepted: ((origin: number) => void) | undefined;
    if (release) {
      const owed = new Uint32Array(n);
      const deadAt = new Uint8Array(n);
      for (const d of dead) deadAt[d.origin] = 1;
      if (this.o.sinks.length > 0) for (const r of routed) owed[r.origin] = (owed[r.origin] as number) + this.o.sinks.length;
      for (let i = 0; i < n; i++) if (deadAt[i] === 0 && owed[i] === 0 && (produced[i] as number) === 0) release(i, Outcome.Filtered);
      accepted = (origin) => {
        if ((owed[origin] = (owed[origin] as number) - 1) === 0 && deadAt[origin] === 0) release(origin, Outcome.Delivered);
      };
    }

    // Sinks: each gets every routed message; failures are retried per item, then dead-lettered.
    if (routed.length > 0) {
      await Promise.all(this.o.sinks.map((sink, k) => this.deliver(sink, k, routed, batch, dead, accepted)));
    }

    if (dead.length > 0) {
      if (!this.o.deadLetter) {
        const first = dead[0] as DeadLetterInput;
        const err = new Error(`flow ${this.name}: ${first.stage} failed and dead-lettering is off: ${first.reason}`);
        this.o.onFatal(err);
        throw err;
      }
      await this.o.store.deadLetter(dead.map(({ origin: _o, ...entry }) => entry));
      for (const d of dead) this.o.logger.warn({ flow: this.name, id: d.message.id, stage: d.stage, attempts: d.attempts, reason: d.reason }, 'dead-lettered');
    }

    const outcomes: Outcome[] = new Array<Outcome>(n);
    let delivered = 0;
    let filtered = 0;
    let deadLettered = 0;
    const deadOrigins = new Uint8Array(n);
    for (const d of dead) deadOrigins[d.origin] = 1;
    for (let i = 0; i < n; i++) {
      if (deadOrigins[i] === 1) {
        outcomes[i] = Outcome.DeadLettered;
        deadLettered++;
      } else if ((produced[i] as number) > 0) {
        outcomes[i] = Outcome.Delivered;
        delivered++;
      } else {
        outcomes[i] = Outcome.Filtered;
        filtered++;
      }
    }
    return { outcomes, delivered, filtered, deadLettered };
  }

  private continueWith(result: StepResult, next: number, origin: number, run: (m: Message, from: number, origin: number) => void): void {
    if (result === null || result === undefined) return;
    if (Array.isArray(result)) {
      for (const child of result) run(child, next, origin);
      return;
    }
    run(result, next, origin);
  }

  private async retryStep(
    input: Message,
    s: number,
    origin: number,
    firstError: unknown,
    batch: Message[],
    dead: (DeadLetterInput & { origin: number })[],
    run: (m: Message, from: number, origin: number) => void,
    note: (s: number, origin: number, result: StepResult) => void,
    ctx: StepContext,
  ): Promise<void> {
    const st = this.o.steps[s] as BuiltStep;
    let err = firstError;
    let attempt = 1;
    for (;;) {
      this.countFailure();
      if (!isRetryable(err) || attempt >= this.o.backoff.attempts) break;
      await this.sleep(this.o.backoff.delay(attempt));
      attempt++;
      try {
        const r = await st.step.process(input, ctx);
        note(s, origin, r);
        this.continueWith(r, s + 1, origin, run);
        return;
      } catch (e) {
        err = e;
      }
    }
    dead.push({
      origin,
      flow: this.name,
      message: toStored(batch[origin] as Message),
      failed: toStored(input),
      stage: `step:${st.kind}`,
      reason: `${st.name}: ${errorMessage(err)}`,
      attempts: attempt,
    });
  }

  private async deliver(
    sink: BuiltSink,
    k: number,
    routed: Routed[],
    batch: Message[],
    dead: (DeadLetterInput & { origin: number })[],
    accepted?: (origin: number) => void,
  ): Promise<void> {
    let items = routed;
    let attempt = 1;
    const meter = this.mSink[k];
    for (;;) {
      let failed: Map<number, unknown>;
      try {
        const res = await sink.sink.write(
          items.map((r) => r.msg),
          sink.ctx,
        );
        failed = res && res.failed.size > 0 ? new Map(res.failed) : new Map();
      } catch (err) {
        failed = new Map(items.map((_r, i) => [i, err]));
      }
      meter?.inc(items.length - failed.size);
      if (accepted) for (const [i, r] of items.entries()) if (!failed.has(i)) accepted(r.origin);
      if (failed.size === 0) return;
      const retry: Routed[] = [];
      for (const [i, err] of failed) {
        const item = items[i];
        if (!item) continue;
        this.countFailure();
        if (isRetryable(err) && attempt < this.o.backoff.attempts) {
          retry.push(item);
        } else {
          dead.push({
            origin: item.origin,
            flow: this.name,
            message: toStored(batch[item.origin] as Message),
            failed: toStored(item.msg),
            stage: `sink:${sink.kind}`,
            reason: `${sink.name}: ${errorMessage(err)}`,
            attempts: attempt,
          });
        }
      }
      if (retry.length === 0) return;
      this.o.logger.debug({ flow: this.name, sink: sink.name, attempt, retrying: retry.length }, 'sink write failed; retrying');
      await this.sleep(this.o.backoff.delay(attempt));
      attempt++;
      items = retry;
    }
  }

  private countFailure(): void {
    this.stats.failed++;
    this.mFailed.inc();
  }

  private async sleep(ms: number): Promise<void> {
    try {
      await this.o.clock.sleep(ms, this.o.hardStop);
    } catch {
      throw new IxError('IX_ENGINE_SHUTDOWN');
    }
  }
}
