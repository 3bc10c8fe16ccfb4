import type pg from 'pg';
import type { Clock } from '../../core/clock.js';

interface Waiter {
  readonly queue: string;
  readonly wake: (byNotification: boolean) => void;
}

export interface WakerOptions {
  readonly channel: string;
  readonly clock: Clock;
  /** Opens the dedicated LISTEN connection. */
  readonly connect: () => pg.Client;
  /** First reconnect delay after the connection drops; doubles up to `maxReconnectMs`. @defaultValue 250 */
  readonly reconnectMs?: number;
  /** @defaultValue 5000 */
  readonly maxReconnectMs?: number;
}

/**
 * Wakes idle workers with `LISTEN/NOTIFY`: one connection per process listens on the store's
 * channel; every enqueue, release or due retry notifies with the queue's name. A waiter
 * wakes on its queue's notification or at its timeout, whichever comes first, so a lost
 * notification (or a lost connection) only costs latency, never work: the timeout is a poll.
 *
 * A notification that arrives while nobody waits on its queue is kept as pending, so the
 * next wait returns at once: the window between "claim found nothing" and "wait" loses no
 * wake-up.
 */
export class Waker {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly waiters = new Set<Waiter>();
  private readonly pending = new Set<string>();
  private closed = false;
  private delay: number;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Whether the LISTEN connection is up (for status and tests). */
  listening = false;

  constructor(private readonly options: WakerOptions) {
    this.delay = options.reconnectMs ?? 250;
  }

  async wait(queue: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.closed || signal?.aborted) return false;
    this.ensureListening();
    if (this.pending.delete(queue)) return true;
    const stop = new AbortController();
    return new Promise<boolean>((resolve) => {
      let done = false;
      const waiter: Waiter = {
        queue,
        wake: (byNotification) => {
          if (done) return;
          done = true;
          this.waiters.delete(waiter);
          signal?.removeEventListener('abort', onAbort);
          stop.abort();
          resolve(byNotification);
        },
      };
      const onAbort = (): void => waiter.wake(false);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
      this.options.clock.sleep(Math.max(0, timeoutMs), stop.signal).then(
        () => waiter.wake(false),
        () => undefined,
      );
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const w of [...this.waiters]) w.wake(false);
    const c = this.client;
    this.client = undefined;
    this.listening = false;
    if (c) await c.end().catch(() => undefined);
  }

  private ensureListening(): void {
    if (this.client || this.connecting || this.closed || this.retryTimer) return;
    this.connecting = this.connect().finally(() => {
      this.connecting = undefined;
    });
  }

  private async connect(): Promise<void> {
    const client = this.options.connect();
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    client.on('notification', (n) => {
      if (n.channel !== this.options.channel) return;
      this.notify(n.payload ?? '');
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.options.channel}"`);
    } catch {
      await client.end().catch(() => undefined);
      this.lost(client);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.listening = true;
    this.delay = this.options.reconnectMs ?? 250;
    // Work may have arrived while nobody listened: let every waiter look again.
    for (const w of [...this.waiters]) w.wake(true);
  }

  private notify(queue: string): void {
    let woke = false;
    for (const w of [...this.waiters]) {
      if (w.queue === queue) {
        w.wake(true);
        woke = true;
      }
    }
    if (!woke) this.pending.add(queue);
  }

  private lost(client: pg.Client): void {
    if (this.client !== undefined && this.client !== client) return;
    this.client = undefined;
    this.listening = false;
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.waiters.size > 0) this.ensureListening();
    }, this.delay);
    this.retryTimer.unref();
    this.delay = Math.min(this.delay * 2, this.options.maxReconnectMs ?? 5000);
  }
}
