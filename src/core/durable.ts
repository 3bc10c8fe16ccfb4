import type { StoredMessage } from './message.js';

/**
 * The part of the engine's store a component may use for its own durable state: an outbox
 * queue, idempotency keys, a checkpoint, dead letters, delivery attempts. The Store port
 * (`src/store/types.ts`) satisfies it; connectors see only this, never the store layer.
 */
export interface DurableStore {
  enqueue(queue: string, items: readonly { readonly message: StoredMessage; readonly availableAt?: number }[]): Promise<{
    readonly inserted: number;
    readonly duplicates: number;
    readonly insertedFlags: readonly boolean[];
  }>;
  /** Adds messages already leased to `owner` for `leaseMs` (no claim needed to deliver them); `insertedFlags` are the ones it holds. */
  enqueueLeased(
    queue: string,
    owner: string,
    items: readonly { readonly message: StoredMessage }[],
    options: { readonly leaseMs: number; readonly dedupeTtlMs?: number },
  ): Promise<{ readonly inserted: number; readonly duplicates: number; readonly insertedFlags: readonly boolean[] }>;
  claim(queue: string, owner: string, options: { readonly limit: number; readonly leaseMs: number }): Promise<DurableQueueItem[]>;
  complete(queue: string, owner: string, ids: readonly string[]): Promise<void>;
  retry(queue: string, owner: string, id: string, options: RetryOptions): Promise<void>;
  release(queue: string, owner: string, ids: readonly string[]): Promise<void>;
  extendLease(queue: string, owner: string, ids: readonly string[], leaseMs: number): Promise<string[]>;
  nextAvailableAt(queue: string): Promise<number | undefined>;
  getCheckpoint(key: string): Promise<string | undefined>;
  setCheckpoint(key: string, value: string): Promise<void>;
  deleteCheckpoint(key: string): Promise<void>;
  remember(scope: string, keys: readonly string[], ttlMs: number): Promise<boolean[]>;
  seen(scope: string, keys: readonly string[]): Promise<boolean[]>;
  deadLetter(
    entries: readonly {
      readonly flow: string;
      readonly message: StoredMessage;
      readonly failed?: StoredMessage;
      readonly stage: string;
      readonly reason: string;
      readonly attempts: number;
      readonly replayQueue?: string;
    }[],
  ): Promise<void>;
  /**
   * Records attempts; with `completed`, also completes those queue items (as `complete`) in the
   * same transaction, so a delivery's record and its completion cost one commit.
   */
  recordDeliveryAttempts(entries: readonly DeliveryAttemptInput[], completed?: CompletedItems): Promise<void>;
  listDeliveryAttempts(filter?: DeliveryAttemptFilter): Promise<DeliveryAttempt[]>;
  /** Removes attempts older than `before` (ms since epoch), of one outbox when given; returns how many. */
  purgeDeliveryAttempts(before: number, outbox?: string): Promise<number>;
}

/**
 * A backoff policy: exponential (the ceiling doubles with each attempt) or fixed, bounded by
 * `maxMs`, with or without full jitter.
 */
export interface BackoffOptions {
  /** `exponential` doubles the ceiling each attempt; `fixed` keeps it at `initialMs`. */
  readonly kind: 'exponential' | 'fixed';
  readonly initialMs: number;
  readonly maxMs: number;
  /** Full jitter: a uniform draw in [0, ceiling]. Without it the delay is the ceiling. */
  readonly jitter: boolean;
}

/**
 * When a message given back by `retry` runs again: at an exact time (`availableAt`, ms since
 * the epoch: a `Retry-After`, a schedule), or after a `backoff` that the store computes in the
 * same UPDATE from the row's own attempts and the store's clock. With `backoff`, retry number
 * n (the row's attempts once this one is counted) waits `min(maxMs, initialMs·2^(n-1))` (fixed:
 * `min(maxMs, initialMs)`), or a uniform draw in [0, that] under full jitter: the AWS
 * "Exponential Backoff and Jitter" schedule of `backoffDelay`.
 */
export type RetryAt = { readonly availableAt: number; readonly backoff?: undefined } | { readonly backoff: BackoffOptions; readonly availableAt?: undefined };

export type RetryOptions = RetryAt & {
  readonly error?: string;
  /** False defers the message without counting an attempt (circuit open, FIFO wait). @defaultValue true */
  readonly countAttempt?: boolean;
};

/** Queue items to complete together with a write (their owner's lease). */
export interface CompletedItems {
  readonly queue: string;
  readonly owner: string;
  readonly ids: readonly string[];
}

export interface DurableQueueItem {
  readonly queue: string;
  readonly message: StoredMessage;
  readonly attempts: number;
  readonly enqueuedAt: number;
  readonly lastError?: string;
}

/** How one outbound delivery attempt ended. */
export type DeliveryOutcome = 'delivered' | 'retry' | 'dead-letter' | 'disabled';

/** One outbound delivery attempt (webhook sink), kept for `ix deliveries`. */
export interface DeliveryAttemptInput {
  readonly flow: string;
  /** The outbox queue the message was delivered from. */
  readonly outbox: string;
  readonly messageId: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  readonly url: string;
  /** When the attempt started (ms since epoch). */
  readonly at: number;
  /** HTTP status, when an answer came. */
  readonly status?: number;
  readonly latencyMs: number;
  readonly outcome: DeliveryOutcome;
  readonly error?: string;
  /** A bounded excerpt of the answer's body. */
  readonly responseExcerpt?: string;
  /** When the next attempt is due (outcome `retry`). */
  readonly nextAt?: number;
}

export interface DeliveryAttempt extends DeliveryAttemptInput {
  readonly id: number;
}

export interface DeliveryAttemptFilter {
  readonly flow?: string;
  readonly outbox?: string;
  readonly messageId?: string;
  /** Only ids greater than this (paging). */
  readonly afterId?: number;
  readonly limit?: number;
}
