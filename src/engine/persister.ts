import type { PersistOptions, PersistResult } from '../core/component.js';
import { toStored, toStoredCompact, type Message, type PayloadSource } from '../core/message.js';
import type { Store } from '../store/types.js';

interface Pending {
  readonly queue: string;
  readonly batch: Message[];
  readonly payloadFrom: PayloadSource | undefined;
  readonly ttlMs: number;
  readonly handoff: boolean;
  resolve(r: PersistResult): void;
  reject(e: unknown): void;
}

/**
 * A local consumer of a queue that takes newly persisted messages straight from the commit:
 * they are written already leased to `owner` (`Store.enqueueLeased`), so the consumer skips
 * claiming, reading and decoding them again. Another worker gets them only once the lease
 * expired (a crash of this process).
 */
export interface Handoff {
  readonly owner: string;
  readonly leaseMs: number;
  /** How many more messages the consumer takes now; a larger group is enqueued for claiming. */
  room(): number;
  /** The messages of one commit that were inserted (not duplicates), leased to `owner`. */
  take(messages: Message[]): void;
}

/**
 * Group commit for push sources: persist calls made in the same turn of the event loop (or while
 * the previous group commits) share one store transaction and one fsync, and each caller learns
 * its own accepted / duplicate counts.
 */
export class Persister {
  private pending: Pending[] = [];
  private scheduled = false;
  /** A group is being committed: calls made meanwhile form the next group. */
  private flushing = false;
  private readonly listeners = new Map<string, () => void>();
  private readonly handoffs = new Map<string, Handoff>();

  /**
   * @param dedupeTtlMs how long a persisted id is remembered: a sender's retry of an id seen
   * in this window is answered as a duplicate and not processed again. @defaultValue 24 h
   */
  /**
   * Whether a message whose payload is text in its meta is stored without the parsed copy. Only
   * on SQLite, whose schema version 4 keeps an older engine from opening the store: workers of
   * one PostgreSQL store may run two versions during a rolling upgrade, and an older one would
   * take such an entry without its payload.
   */
  private readonly compact: boolean;

  constructor(
    private readonly store: Store,
    private readonly dedupeTtlMs = 86_400_000,
  ) {
    this.compact = store.kind === 'sqlite';
  }

  /** Called after a queue received new messages (wakes its pump at once). */
  onEnqueued(queue: string, listener: () => void): void {
    this.listeners.set(queue, listener);
  }

  /** Sets (or with `undefined` removes) the local consumer that takes `queue`'s new messages. */
  handoffTo(queue: string, handoff: Handoff | undefined): void {
    if (handoff) this.handoffs.set(queue, handoff);
    else this.handoffs.delete(queue);
  }

  /**
   * Persists `batch` into `queue`. With `handoff`, the messages may go straight to the queue's
   * local consumer after the commit; the caller must not change them afterwards.
   */
  persist(queue: string, batch: Message[], options: PersistOptions = {}, handoff = false): Promise<PersistResult> {
    const ttlMs = options.dedupeTtlMs ?? this.dedupeTtlMs;
    return new Promise((resolve, reject) => {
      this.pending.push({ queue, batch, payloadFrom: options.payloadFrom, ttlMs, handoff, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  /**
   * One group at a time: what arrives while a group commits (and waits for its fsync) waits
   * too, then commits as one transaction. It would have waited for the next fsync anyway, so
   * the latency is the same and a busy source costs one transaction per fsync, not per turn.
   */
  private async flush(): Promise<void> {
    this.scheduled = false;
    this.flushing = true;
    try {
      await this.commit();
    } finally {
      this.flushing = false;
      if (this.pending.length > 0) this.schedule();
    }
  }

  private async commit(): Promise<void> {
    const work = this.pending;
    this.pending = [];
    const byQueue = new Map<string, Pending[]>();
    for (const p of work) {
      const k = `${p.handoff ? 'h' : 'q'} ${p.ttlMs} ${p.queue}`;
      const list = byQueue.get(k);
      if (list) list.push(p);
      else byQueue.set(k, [p]);
    }
    for (const list of byQueue.values()) {
      const { queue, ttlMs, handoff: wanted } = list[0] as Pending;
      try {
        const items = list.flatMap((p) => {
          const from = this.compact ? p.payloadFrom : undefined;
          return p.batch.map((m) => ({ message: from ? toStoredCompact(m, from) : toStored(m) }));
        });
        const h = wanted ? this.handoffs.get(queue) : undefined;
        const handoff = h && h.room() >= items.length ? h : undefined;
        const r = handoff
          ? await this.store.enqueueLeased(queue, handoff.owner, items, { dedupeTtlMs: ttlMs, leaseMs: handoff.leaseMs })
          : await this.store.enqueue(queue, items, { dedupeTtlMs: ttlMs });
        let at = 0;
        for (const p of list) {
          const persisted = r.insertedFlags.slice(at, at + p.batch.length);
          at += p.batch.length;
          const accepted = persisted.filter(Boolean).length;
          p.resolve({ accepted, duplicates: p.batch.length - accepted, persisted });
        }
        if (handoff) {
          const taken: Message[] = [];
          let i = 0;
          for (const p of list) for (const m of p.batch) if (r.insertedFlags[i++] === true) taken.push(m);
          if (taken.length > 0) handoff.take(taken);
        } else if (r.inserted > 0) this.listeners.get(queue)?.();
      } catch (err) {
        for (const p of list) p.reject(err);
      }
    }
  }
}
