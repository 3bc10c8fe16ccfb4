/**
 * Acknowledgements of one queue, committed in groups: a batch that settled is completed with
 * the ones that settle within `maxWaitMs` after it, in one store call (one transaction), or
 * at once when `maxGroup` ids wait. A commit per small batch rewrites the same pages and index
 * leaves again and again; a group of 240 costs the SQLite store 15 % less per message than
 * groups of 24. Until its group commits a message stays leased to this worker (and counted
 * in flight): a crash meanwhile delivers it again, as any acknowledgement not yet committed.
 */
export class CompleteGroup {
  private ids: string[] = [];
  private waiting: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly commit: (ids: string[]) => Promise<void>,
    private readonly maxGroup = 256,
    private readonly maxWaitMs = 20,
  ) {}

  /** Resolves once `ids` are completed in the store (rejects when their group's commit failed). */
  add(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.ids.push(id);
    const done = new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
    if (this.ids.length >= this.maxGroup) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.maxWaitMs);
    return done;
  }

  /** Commits what waits now, without waiting for the timer. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.ids.length === 0) return;
    const ids = this.ids;
    const waiting = this.waiting;
    this.ids = [];
    this.waiting = [];
    // a store may throw before its promise: a rejection for the waiters too
    Promise.resolve()
      .then(() => this.commit(ids))
      .then(
        () => {
          for (const w of waiting) w.resolve();
        },
        (err: unknown) => {
          for (const w of waiting) w.reject(err);
        },
      );
  }
}
