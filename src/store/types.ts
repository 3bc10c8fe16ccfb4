import type { CompletedItems, DeliveryAttempt, DeliveryAttemptFilter, DeliveryAttemptInput, RetryOptions } from '../core/durable.js';
import type { StoredMessage } from '../core/message.js';

export type {
  BackoffOptions,
  CompletedItems,
  DeliveryAttempt,
  DeliveryAttemptFilter,
  DeliveryAttemptInput,
  DeliveryOutcome,
  RetryAt,
  RetryOptions,
} from '../core/durable.js';

/**
 * The Store port: durable state for the engine. SQLite (embedded, the default) and
 * PostgreSQL (several workers) implement it; both pass `contract.ts`.
 *
 * Time comes from the clock injected into the store, so leases and retry times follow a
 * fake clock in tests.
 */
export interface Store {
  /** `sqlite` or `postgres`. */
  readonly kind: string;
  close(): Promise<void>;

  // ---- queues (a flow's inbox, a sink's outbox) ----
  /**
   * Adds messages to a queue. A message whose id is already in the queue is a duplicate and
   * is not added again; with `dedupeTtlMs`, so is one whose id was enqueued within that window
   * (even if it was processed since): the ids are remembered in the idempotency scope named
   * after the queue, in the same transaction. Resolves once durable.
   */
  enqueue(queue: string, items: readonly EnqueueItem[], options?: EnqueueOptions): Promise<EnqueueResult>;
  /**
   * Adds messages as `enqueue` does, each one already leased to `owner` for `leaseMs` (as if
   * `owner` had claimed it in the same transaction): a writer that delivers what it wrote
   * skips the claim. Another claimer gets them only once the lease expired (a crash of the
   * writer); `insertedFlags` says which ones `owner` now holds. Resolves once durable.
   */
  enqueueLeased(queue: string, owner: string, items: readonly LeasedEnqueueItem[], options: LeasedEnqueueOptions): Promise<EnqueueResult>;
  /** Leases up to `limit` ready messages (available_at <= now, no live lease), oldest first. */
  claim(queue: string, owner: string, options: ClaimOptions): Promise<QueueItem[]>;
  /** Done: removes the messages (only if `owner` still holds their lease). */
  complete(queue: string, owner: string, ids: readonly string[]): Promise<void>;
  /**
   * Gives a message back to the queue, counting an attempt: to run again at `availableAt`, or
   * after `backoff`, computed by the store in the same statement from the row's attempts.
   */
  retry(queue: string, owner: string, id: string, options: RetryOptions): Promise<void>;
  /** Gives messages back at once without counting an attempt (shutdown). */
  release(queue: string, owner: string, ids: readonly string[]): Promise<void>;
  /** Extends the leases `owner` holds on these messages. Returns the ids it still holds. */
  extendLease(queue: string, owner: string, ids: readonly string[], leaseMs: number): Promise<string[]>;
  /** Counts by state; without `queue`, over all queues. */
  queueStats(queue?: string): Promise<QueueStats>;
  /** The earliest `availableAt` of a message not leased, if any (to sleep until it). */
  nextAvailableAt(queue: string): Promise<number | undefined>;

  // ---- checkpoints ----
  getCheckpoint(key: string): Promise<string | undefined>;
  setCheckpoint(key: string, value: string): Promise<void>;
  deleteCheckpoint(key: string): Promise<void>;
  /** The checkpoints whose key starts with `prefix` (taken literally), by key. */
  listCheckpoints(prefix: string): Promise<Checkpoint[]>;

  // ---- idempotency keys ----
  /** Records keys in a scope; returns, per key, true when it was new (not seen in the window). */
  remember(scope: string, keys: readonly string[], ttlMs: number): Promise<boolean[]>;
  /** Per key, whether it is remembered (and not expired). */
  seen(scope: string, keys: readonly string[]): Promise<boolean[]>;
  /** Removes expired keys; returns how many. */
  purgeExpired(): Promise<number>;

  // ---- rate limits (shared by every process on the store) ----
  /**
   * Reserves the next slot of a rate limit (GCRA). Resolves to how many ms the caller must
   * wait before acting (0: act now). Calls are never refused: each gets its turn in order.
   */
  acquireRate(key: string, limit: RateLimit): Promise<number>;

  // ---- leases (one leader per name, e.g. a schedule) ----
  /** True when `owner` holds the lease now (newly taken, renewed, or taken over after expiry). */
  acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseLease(name: string, owner: string): Promise<void>;

  // ---- dead letters ----
  deadLetter(entries: readonly DeadLetterInput[]): Promise<void>;
  listDeadLetters(filter?: DeadLetterFilter): Promise<DeadLetter[]>;
  getDeadLetter(id: number): Promise<DeadLetter | undefined>;
  countDeadLetters(flow?: string): Promise<number>;
  /**
   * Moves dead letters back into a queue (`inbox:<flow>` by default) in one transaction and
   * removes them from the DLQ. Returns the ids moved.
   */
  replayDeadLetters(ids: readonly number[], queueFor: (entry: DeadLetter) => string): Promise<number[]>;
  deleteDeadLetters(ids: readonly number[]): Promise<number>;

  // ---- delivery attempts (outbound webhooks; `ix deliveries`) ----
  /** With `completed`: those queue items are completed in the same transaction. */
  recordDeliveryAttempts(entries: readonly DeliveryAttemptInput[], completed?: CompletedItems): Promise<void>;
  /** Oldest first; `afterId` pages. */
  listDeliveryAttempts(filter?: DeliveryAttemptFilter): Promise<DeliveryAttempt[]>;
  /** Removes attempts older than `before` (ms since epoch), of one outbox when given; returns how many. */
  purgeDeliveryAttempts(before: number, outbox?: string): Promise<number>;

  // ---- optional: waking and cluster status (PostgreSQL implements them) ----
  /**
   * Waits until work may be ready in `queue` (another process enqueued or released into it),
   * `timeoutMs` passes, or `signal` aborts. Resolves true when woken by new work. A store
   * without it is polled: sleep, then claim again.
   */
  waitForWork?(queue: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  /** Records that a worker process is alive (call every few seconds). */
  heartbeat?(worker: WorkerHeartbeat): Promise<void>;
  /** Live workers (heartbeat within the store's window) and what each holds. */
  listWorkers?(): Promise<WorkerStatus[]>;
  /** Removes a worker on clean shutdown. */
  removeWorker?(id: string): Promise<void>;
  /** Owners that hold queue items or named leases now (SQLite: to find a dead process's holdings). */
  holders?(): Promise<string[]>;
  /**
   * Gives back at once what worker `id` holds (as owner `id` or `id/…`): its queue items are
   * ready again, without counting an attempt, and its named leases are dropped. Only for a
   * worker known to be gone. Returns how many were given back.
   */
  releaseHoldings?(id: string): Promise<number>;
}

export interface WorkerHeartbeat {
  /** Unique per process. Queue claims and leases whose owner is `id` or starts with `id/` count as its holdings. */
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  /** Anything to show in `ix status` (flows, version, admin address). */
  readonly info?: Record<string, unknown>;
}

export interface WorkerStatus {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly heartbeatAt: number;
  readonly info: Record<string, unknown>;
  /** Live queue leases held, per queue. */
  readonly holds: Record<string, number>;
  /** Leader leases held (e.g. `schedule:<flow>`). */
  readonly leases: string[];
}

export interface Checkpoint {
  readonly key: string;
  readonly value: string;
  /** When it was last set (ms since epoch, the store's clock). */
  readonly updatedAt: number;
}

export interface RateLimit {
  /** Events allowed… */
  readonly count: number;
  /** …per this many milliseconds. */
  readonly perMs: number;
  /** Events that may go at once after a quiet spell; 1 (default) spaces every event evenly. */
  readonly burst?: number;
}

export interface EnqueueItem {
  readonly message: StoredMessage;
  /** Not before this time (ms since epoch); now by default. */
  readonly availableAt?: number;
}

export interface EnqueueOptions {
  /** Remember ids this long and refuse them as duplicates meanwhile. */
  readonly dedupeTtlMs?: number;
}

export interface LeasedEnqueueItem {
  readonly message: StoredMessage;
}

export interface LeasedEnqueueOptions extends EnqueueOptions {
  /** How long the writer holds the new messages. */
  readonly leaseMs: number;
}

export interface EnqueueResult {
  readonly inserted: number;
  readonly duplicates: number;
  /** Per item, true when it was inserted. */
  readonly insertedFlags: readonly boolean[];
}

export interface ClaimOptions {
  readonly limit: number;
  readonly leaseMs: number;
}

export interface QueueItem {
  readonly queue: string;
  readonly message: StoredMessage;
  /** Attempts counted so far (0 on the first claim). */
  readonly attempts: number;
  readonly enqueuedAt: number;
  readonly lastError?: string;
}

export interface QueueStats {
  readonly ready: number;
  readonly scheduled: number;
  readonly leased: number;
}

export interface DeadLetterInput {
  readonly flow: string;
  /** The source message as it entered the flow (what a replay sends again). */
  readonly message: StoredMessage;
  /** The message as it was where it failed, when different from `message`. */
  readonly failed?: StoredMessage;
  /** Where it failed: `step:map`, `sink:file`, `source`. */
  readonly stage: string;
  readonly reason: string;
  readonly attempts: number;
  /** The queue a replay returns it to; `inbox:<flow>` when absent (an outbox for sink-side dead letters). */
  readonly replayQueue?: string;
}

export interface DeadLetter extends DeadLetterInput {
  readonly id: number;
  readonly createdAt: number;
}

export interface DeadLetterFilter {
  readonly flow?: string;
  readonly limit?: number;
  /** Only ids greater than this (paging). */
  readonly afterId?: number;
}

export function inboxQueue(flow: string): string {
  return `inbox:${flow}`;
}

/** Where `ix dlq replay` sends a dead letter: its own replay queue, else the flow's inbox. */
export function replayQueueFor(entry: DeadLetter): string {
  return entry.replayQueue ?? inboxQueue(entry.flow);
}
