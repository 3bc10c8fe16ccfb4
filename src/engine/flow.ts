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

  /** Takes a batch once there is room (backpressure); the returned ack settles later. */
  async emit(batch: Message[]): Promise<Ack> {
    while (this.inFlight >= this.o.concurrency) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.o.hardStop.aborted) throw new IxError('IX_ENGINE_SHUTDOWN');
    this.inFlight++;
    this.mInFlight.inc();
    const settled = this.process(batch).finally(() => {
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

  private async process(batch: Message[]): Promise<BatchOutcome> {
    const n = batch.length;
    this.stats.in += n;
    this.mIn.inc(n);
    // What steps with a `settled` hook passed on, by step index, with the origin.
    const passed = new Map<number, { origin: number; msg: Message }[]>();
    let result: BatchOutcome;
    try {
      result = await this.runBatch(batch, passed);
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

  private async runBatch(batch: Message[], passed: Map<number, { origin: number; msg: Message }[]>): Promise<BatchOutcome> {
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

    // Sinks: each gets every routed message; failures are retried per item, then dead-lettered.
    if (routed.length > 0) {
      await Promise.all(this.o.sinks.map((sink, k) => this.deliver(sink, k, routed, batch, dead)));
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

  private async deliver(sink: BuiltSink, k: number, routed: Routed[], batch: Message[], dead: (DeadLetterInput & { origin: number })[]): Promise<void> {
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
