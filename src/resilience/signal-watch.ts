import { setMaxListeners } from 'node:events';

/**
 * One abort listener per signal, however many members run under it: a flow's signal has
 * hundreds of calls under it, and an EventTarget listener per call costs more than the call's
 * own bookkeeping. `watch(signal)` adds the listener the first time it sees a signal; members
 * carry their signal and the owner finds those of an aborted one itself, so joining and leaving
 * cost nothing per member.
 */
export class SignalWatch {
  private readonly seen = new WeakSet<AbortSignal>();

  constructor(private readonly onAbort: (signal: AbortSignal) => void) {}

  watch(signal: AbortSignal): void {
    if (this.seen.has(signal)) return;
    this.seen.add(signal);
    // a flow's signal legitimately has a listener per waiting call (sleeps under a rate limit)
    setMaxListeners(0, signal);
    signal.addEventListener('abort', () => this.onAbort(signal), { once: true });
  }
}
