/**
 * Tracks acks that settle out of order and yields the contiguous settled prefix: a source's
 * checkpoint may only cover positions whose every earlier batch has settled too.
 */
export class Watermark<P> {
  private readonly pending: { position: P; done: boolean }[] = [];
  private committed: P | undefined;
  private broken = false;

  /** Registers a batch ending at `position`, in emission order; call `settle` on it later. */
  track(position: P): { settle(ok: boolean): void } {
    const entry = { position, done: false };
    this.pending.push(entry);
    return {
      settle: (ok: boolean) => {
        if (!ok) {
          // A batch that could not settle will be delivered again from the last checkpoint:
          // nothing after it may be checkpointed in this run.
          this.broken = true;
          return;
        }
        entry.done = true;
        if (this.broken) return;
        while (this.pending.length > 0 && (this.pending[0] as { done: boolean }).done) {
          this.committed = (this.pending.shift() as { position: P }).position;
        }
      },
    };
  }

  /** The furthest position whose batch and every earlier batch settled. */
  get position(): P | undefined {
    return this.committed;
  }

  get outstanding(): number {
    return this.pending.length;
  }
}
