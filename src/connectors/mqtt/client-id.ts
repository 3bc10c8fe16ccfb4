import type { Clock } from '../../core/clock.js';
import type { ComponentStore } from '../../core/component.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';

/** MQTT 5 DISCONNECT reason: another client connected with this client id. */
export const SESSION_TAKEN_OVER = 0x8e;

/** Lease on a session slot; renewed every third of it. A crashed worker's slot is free after it. */
export const SLOT_LEASE_MS = 15_000;
/** More slots than workers anyone runs: a store that refuses every lease fails, not loops. */
const MAX_SLOTS = 1000;
/** Brokers must accept 23 characters; Mosquitto, EMQX, HiveMQ and others take far more. */
const MAX_ID = 64;

/** Drops of an established connection, within TAKEOVER_WINDOW_MS, that read as a takeover loop. */
const TAKEOVER_DROPS = 3;
const TAKEOVER_WINDOW_MS = 60_000;

/**
 * Tells a session takeover without a reason code (Mosquitto 2.0 closes the older connection
 * without a DISCONNECT) from a broker that went away: the broker closed an established
 * connection, and the reconnect succeeded, several times within a minute. Two engines on one
 * client id do exactly that to each other; a broker restart or a network cut fails the reconnects.
 */
export class TakeoverWatch {
  private readonly drops: number[] = [];
  private warnedAt = -Infinity;

  constructor(private readonly clock: Clock) {}

  /** The broker closed a connection that was up; true when that is a loop worth a warning. */
  dropped(): boolean {
    const now = this.clock.now();
    this.drops.push(now);
    while ((this.drops[0] as number) < now - TAKEOVER_WINDOW_MS) this.drops.shift();
    return this.drops.length >= TAKEOVER_DROPS && this.due(now);
  }

  /** The broker said the session was taken over (MQTT 5, reason 0x8E); true when a warning is due. */
  reported(): boolean {
    return this.due(this.clock.now());
  }

  /** One warning a minute: a takeover loop repeats every reconnect, each logged as a lost connection already. */
  private due(now: number): boolean {
    if (now - this.warnedAt < TAKEOVER_WINDOW_MS) return false;
    this.warnedAt = now;
    return true;
  }
}

/** Whether every topic filter is a shared subscription (`$share/GROUP/FILTER`): the source then runs on every worker. */
export function sharedOnly(topics: readonly string[]): boolean {
  return topics.every((t) => t.startsWith('$share/'));
}

/** The flow's default client id, `ix-FLOW`, in characters every broker accepts. */
export function defaultClientId(flow: string): string {
  return `ix-${flow}`.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, MAX_ID);
}

/** Slot 0 is the default id itself, so a single worker keeps the session it always had. */
export function slotClientId(base: string, n: number): string {
  if (n === 0) return base;
  const suffix = `-${n}`;
  return base.slice(0, MAX_ID - suffix.length) + suffix;
}

/**
 * Session slots for a source that runs on every worker (only `$share/` topics) without a
 * configured `clientId`. One client id for all would make the workers take each other's session
 * over in a loop; an id per process (hostname, pid) would leave a persistent session behind at
 * every restart, and a broker keeps queueing a share of the group's messages for an offline
 * session (Mosquitto does) that nobody resumes. So each worker leases the lowest free slot in
 * the store the workers share, under the lease `mqtt-client:<id>`, and connects as `ix-FLOW`,
 * `ix-FLOW-1`, `ix-FLOW-2` … The ids stay unique among live workers and their number stays at
 * the most workers ever run at once; a worker that starts resumes a free slot's session, with
 * what it held unacknowledged and what was queued for it (the sessions of one shared
 * subscription are interchangeable). The delivery counts, keyed by client id, go with the slot.
 */
export class SessionSlots {
  private held: number | undefined;
  /** Slots whose session a client outside this store took over: not used again by this source. */
  private readonly skipped = new Set<number>();

  constructor(
    private readonly store: ComponentStore,
    private readonly owner: string,
    private readonly base: string,
    private readonly logger: Logger,
  ) {}

  /** The slot held before when it still is this worker's (its session resumes), else the lowest free one. */
  async claim(): Promise<string> {
    if (this.held !== undefined && (await this.take(this.held))) return slotClientId(this.base, this.held);
    this.held = undefined;
    for (let n = 0; n < MAX_SLOTS; n++) {
      if (await this.take(n)) {
        this.held = n;
        return slotClientId(this.base, n);
      }
    }
    throw new Error(`no free MQTT session slot for ${this.base} among ${MAX_SLOTS}`);
  }

  /** Renews the held slot's lease until the returned function is called; `lost` when another worker holds it. */
  keep(lost: (err: Error) => void): () => void {
    const n = this.held;
    if (n === undefined) return () => undefined;
    const timer = setInterval(() => {
      // a store may throw before its promise: a rejection here too
      Promise.resolve()
        .then(() => this.store.acquireLease(this.lease(n), this.owner, SLOT_LEASE_MS))
        .then(
          (still) => {
            if (still || this.held !== n) return;
            this.held = undefined;
            lost(new Error(`another worker holds the session slot ${slotClientId(this.base, n)} now`));
          },
          (err: unknown) => this.logger.warn({ err: errorMessage(err) }, 'mqtt: session slot lease renewal failed'),
        );
    }, SLOT_LEASE_MS / 3);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** The held slot's session was taken over (a worker that does not share this store): move on. */
  takenOver(): void {
    if (this.held === undefined) return;
    this.skipped.add(this.held);
    void this.release();
  }

  async release(): Promise<void> {
    const n = this.held;
    this.held = undefined;
    if (n !== undefined) await this.store.releaseLease(this.lease(n), this.owner).catch(() => undefined);
  }

  private take(n: number): Promise<boolean> {
    return this.skipped.has(n) ? Promise.resolve(false) : this.store.acquireLease(this.lease(n), this.owner, SLOT_LEASE_MS);
  }

  private lease(n: number): string {
    return `mqtt-client:${slotClientId(this.base, n)}`;
  }
}
