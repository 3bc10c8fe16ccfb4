import { setMaxListeners } from 'node:events';

/**
 * Members grouped by the abort signal they run under, with one abort listener per signal
 * instead of one per member: a flow's signal has hundreds of calls under it, and an
 * EventTarget listener per call costs more than the call's own bookkeeping.
 */
export class SignalGroups<T> {
  private readonly groups = new WeakMap<AbortSignal, Set<T>>();

  /** `onAbort` gets the members still in the group when their signal aborts. */
  constructor(private readonly onAbort: (members: Set<T>, reason: unknown) => void) {}

  /** The group of `signal`, created (and its listener added) on first use. */
  of(signal: AbortSignal): Set<T> {
    let group = this.groups.get(signal);
    if (!group) {
      const members = new Set<T>();
      group = members;
      this.groups.set(signal, members);
      // a flow's signal legitimately has a listener per waiting call (sleeps under a rate limit)
      setMaxListeners(0, signal);
      signal.addEventListener('abort', () => this.onAbort(members, signal.reason), { once: true });
    }
    return group;
  }

  /** Takes `member` out of its signal's group (it is over). */
  delete(signal: AbortSignal, member: T): void {
    this.groups.get(signal)?.delete(member);
  }
}
