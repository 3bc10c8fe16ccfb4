/**
 * A first-in first-out queue. Taking from the front costs what is taken, where
 * `Array#splice(0, n)` moves every item left behind: a consumer that takes a few at a time from
 * thousands held would pay for the whole array on each take.
 */
export class Fifo<T> {
  private items: T[] = [];
  /** Index of the front item in `items`. */
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** Removes and returns up to `n` items from the front, oldest first. */
  take(n: number): T[] {
    const end = Math.min(this.items.length, this.head + Math.max(0, Math.floor(n)));
    const out = this.items.slice(this.head, end);
    this.head = end;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      // the taken front is at least half of the array: drop it (amortised over the takes)
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  /** Removes and returns every item, oldest first. */
  drain(): T[] {
    return this.take(this.length);
  }

  /** Keeps only the items `keep` accepts, in their order. */
  retain(keep: (item: T) => boolean): void {
    this.items = this.items.slice(this.head).filter(keep);
    this.head = 0;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i] as T;
  }
}
