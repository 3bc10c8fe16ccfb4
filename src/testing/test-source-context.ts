import type { Ack, BatchOutcome, ComponentStore, HttpRoute, PersistResult, SourceContext } from '../core/component.js';
import type { Message } from '../core/message.js';
import { Outcome } from '../core/component.js';
import { systemClock, type Clock } from '../core/clock.js';
import { silentLogger, type Logger } from '../core/logger.js';

/** What the fake flow does with one emitted message. */
export type Decision = 'deliver' | 'filter' | 'dead-letter' | 'reject' | 'hang';

export interface TestSourceContextOptions {
  batchSize?: number;
  clock?: Clock;
  /** @defaultValue every message is delivered */
  decide?: (msg: Message) => Decision;
  /** Milliseconds before a batch settles. @defaultValue 0 */
  settleDelayMs?: number;
  name?: string;
  /** @defaultValue `test` */
  flow?: string;
  /** This worker's id; contexts on one store with different owners stand for several workers. @defaultValue `test-worker` */
  owner?: string;
  /** @defaultValue silent */
  logger?: Logger;
  /** The store the source sees. @defaultValue one that fails every call */
  store?: ComponentStore;
}

/**
 * A SourceContext that stands in for the engine: it records every emitted message and settles
 * each batch as `decide` says. A batch with any `reject` rejects its `settled` (the source must
 * redeliver); `hang` never settles (a crash before the sinks answered). A message emitted with
 * `error` is dead-lettered, as the engine does.
 */
export class TestSourceContext implements SourceContext {
  readonly name: string;
  readonly flow: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly baseDir = process.cwd();
  readonly batchSize: number;
  readonly resources = {
    get<T>(section: string, name: string): T {
      throw new Error(`no resource ${section}.${name}`);
    },
    has: () => false,
  };
  readonly store: ComponentStore;
  readonly owner: string;
  readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  readonly http = { route: (_r: HttpRoute) => undefined };
  /** Every emitted message, in order (redeliveries included). */
  readonly emitted: Message[] = [];
  readonly delivered = new Map<string, Message>();
  readonly deadLettered = new Map<string, Message>();
  readonly filtered = new Map<string, Message>();
  rejectedBatches = 0;
  emits = 0;
  private checkpointValue: string | undefined;
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];
  private readonly decide: (msg: Message) => Decision;
  private readonly settleDelayMs: number;

  constructor(opts: TestSourceContextOptions = {}) {
    this.name = opts.name ?? 'test.source';
    this.flow = opts.flow ?? 'test';
    this.owner = opts.owner ?? 'test-worker';
    this.logger = opts.logger ?? silentLogger;
    this.batchSize = opts.batchSize ?? 100;
    this.clock = opts.clock ?? systemClock;
    this.decide = opts.decide ?? (() => 'deliver');
    this.settleDelayMs = opts.settleDelayMs ?? 0;
    this.store = opts.store ?? noStore;
  }

  readonly checkpoint = {
    get: async (): Promise<string | undefined> => this.checkpointValue,
    set: async (v: string): Promise<void> => {
      this.checkpointValue = v;
    },
  };

  accepting(): boolean {
    return !this.signal.aborted;
  }

  async persist(batch: Message[]): Promise<PersistResult> {
    await this.emit(batch);
    return { accepted: batch.length, duplicates: 0 };
  }

  async emit(batch: Message[]): Promise<Ack> {
    this.emits++;
    const decisions = batch.map((m): Decision => (m.error !== undefined ? 'dead-letter' : this.decide(m)));
    this.emitted.push(...batch);
    const settled = (async (): Promise<BatchOutcome> => {
      if (this.settleDelayMs > 0) await new Promise((r) => setTimeout(r, this.settleDelayMs));
      if (decisions.includes('hang')) await new Promise(() => undefined);
      if (decisions.includes('reject')) {
        this.rejectedBatches++;
        this.notify();
        throw new Error('test: batch could not settle');
      }
      const outcomes = decisions.map((d, i) => {
        const m = batch[i] as Message;
        if (d === 'dead-letter') {
          this.deadLettered.set(m.id, m);
          return Outcome.DeadLettered;
        }
        if (d === 'filter') {
          this.filtered.set(m.id, m);
          return Outcome.Filtered;
        }
        this.delivered.set(m.id, m);
        return Outcome.Delivered;
      });
      this.notify();
      return {
        outcomes,
        delivered: outcomes.filter((o) => o === Outcome.Delivered).length,
        deadLettered: outcomes.filter((o) => o === Outcome.DeadLettered).length,
        filtered: outcomes.filter((o) => o === Outcome.Filtered).length,
      };
    })();
    settled.catch(() => undefined);
    this.notify();
    return { settled };
  }

  /** Settled ids (delivered, dead-lettered or filtered). */
  get settledCount(): number {
    return this.delivered.size + this.deadLettered.size + this.filtered.size;
  }

  /** Resolves when `pred` holds; rejects after `timeoutMs` with `what` in the message. */
  waitFor(pred: () => boolean, timeoutMs = 15_000, what = 'condition'): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w = { pred, resolve: () => undefined as void };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(
          new Error(
            `timed out after ${timeoutMs}ms waiting for ${what} (emitted ${this.emitted.length}, delivered ${this.delivered.size}, dead-lettered ${this.deadLettered.size})`,
          ),
        );
      }, timeoutMs);
      w.resolve = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push(w);
    });
  }

  stop(): void {
    this.controller.abort(new Error('test: stop'));
  }

  private notify(): void {
    for (const w of [...this.waiters]) {
      if (w.pred()) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve();
      }
    }
  }
}

/** A store for contexts whose components keep no state: any call fails loudly. */
export const noStore: ComponentStore = new Proxy({} as ComponentStore, {
  // 'then' stays undefined so the proxy is not mistaken for a promise.
  get: (_t, prop) => (prop === 'then' ? undefined : () => Promise.reject(new Error(`test context has no store (called ${String(prop)})`))),
});
