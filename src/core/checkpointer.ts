import type { CheckpointHandle } from './component.js';
import { Watermark } from './watermark.js';

/**
 * Commits a source's position after the batches it covers settled: out-of-order acks are
 * ordered by a Watermark, and writes are throttled to one per `intervalMs`.
 */
export class Checkpointer<P> {
  private readonly watermark = new Watermark<P>();
  private readonly inflight = new Set<Promise<unknown>>();
  private written: P | undefined;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly handle: CheckpointHandle,
    private readonly serialize: (p: P) => string,
    private readonly intervalMs = 100,
  ) {}

  /** Tracks a batch ending at `position` whose ack is `settled`. */
  track(position: P, settled: Promise<unknown>): void {
    const t = this.watermark.track(position);
    const p = settled.then(
      () => {
        t.settle(true);
        this.schedule();
      },
      () => t.settle(false),
    );
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** Batches tracked and not yet settled. */
  get outstanding(): number {
    return this.inflight.size;
  }

  /** Waits until fewer than `max` batches are outstanding. */
  async waitBelow(max: number): Promise<void> {
    while (this.inflight.size >= max) await Promise.race(this.inflight);
  }

  /** Waits for every tracked batch, then writes the final position. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.write();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // A failed periodic write is retried by the next one, and by flush() at the end.
      this.write().catch(() => undefined);
    }, this.intervalMs);
  }

  private write(): Promise<void> {
    const next = this.writing.catch(() => undefined).then(async () => {
      const pos = this.watermark.position;
      if (pos === undefined || pos === this.written) return;
      await this.handle.set(this.serialize(pos));
      this.written = pos;
    });
    this.writing = next;
    return next;
  }
}
