import type { Clock } from './clock.js';
import type { DurableStore } from './durable.js';
import type { Logger } from './logger.js';
import type { Message, PayloadSource, StoredMessage } from './message.js';

/** How one source message ended. Every message ends in exactly one of these. */
export const Outcome = {
  Delivered: 1,
  DeadLettered: 2,
  Filtered: 3,
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

/** What a source learns when a batch it emitted has settled. */
export interface BatchOutcome {
  /** One entry per emitted message, in emission order. */
  readonly outcomes: readonly Outcome[];
  readonly delivered: number;
  readonly deadLettered: number;
  readonly filtered: number;
}

/**
 * Returned by `emit` once the flow took the batch. `settled` resolves when every message
 * derived from the batch was durably accepted by every sink, dead-lettered, or filtered.
 * It rejects when that cannot be promised (shutdown past its deadline, store failure): the
 * source must then leave the batch un-acknowledged so it is delivered again.
 */
export interface Ack {
  readonly settled: Promise<BatchOutcome>;
}

/** Durable position of one source, committed only after what it covers has settled. */
export interface CheckpointHandle {
  get(): Promise<string | undefined>;
  set(value: string): Promise<void>;
}

export interface PersistResult {
  readonly accepted: number;
  /** Messages whose id was already persisted (a sender's retry): not processed again. */
  readonly duplicates: number;
  /** Per message of the batch, in order: true when persisted, false when a duplicate. */
  readonly persisted?: readonly boolean[];
}

export interface PersistOptions {
  /**
   * How long a persisted id is remembered: a sender's retry of an id seen in this window is a
   * duplicate, also after the first copy was processed. @defaultValue the engine's (24 h)
   */
  readonly dedupeTtlMs?: number;
  /**
   * Each message's payload is the text at this path of its meta (a webhook's raw body), parsed
   * as JSON or as the text itself: the inbox keeps it once on SQLite, and the payload is parsed
   * back when the entry is read from the store (after a restart). The messages as given go to
   * the flow.
   */
  readonly payloadFrom?: PayloadSource;
}

/** A route on the public HTTP listener, registered by push sources (http ingest, webhooks). */
export interface HttpRoute {
  readonly method: 'POST' | 'PUT' | 'GET' | 'DELETE' | 'PATCH';
  readonly path: string;
  /** Maximum body size in bytes. */
  readonly bodyLimit: number;
  handler(req: HttpRequest): Promise<HttpResponse>;
}

export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly query: Readonly<Record<string, unknown>>;
  /** The raw bytes as received. */
  readonly rawBody: Buffer;
  /** The client's address as the socket sees it. */
  readonly remoteAddress: string;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: unknown;
}

export interface HttpRegistrar {
  route(route: HttpRoute): void;
}

/** Named resources built from the spec's sections (`services`, `mappings` …), built once. */
export interface Resources {
  /** The built resource, or throws IX_SPEC_UNKNOWN_REFERENCE naming what exists. */
  get<T>(section: string, name: string): T;
  has(section: string, name: string): boolean;
}

/**
 * The durable state a component may use (the engine's store, seen through what components
 * need): keyed state, idempotency keys, outbox queues with scheduled retries, shared rate
 * limits and leader leases. Every store implementation provides it.
 */
export interface ComponentStore extends DurableStore {
  enqueue(
    queue: string,
    items: readonly { readonly message: StoredMessage; readonly availableAt?: number }[],
    options?: { readonly dedupeTtlMs?: number },
  ): Promise<{ readonly inserted: number; readonly duplicates: number; readonly insertedFlags: readonly boolean[] }>;
  acquireRate(key: string, limit: { readonly count: number; readonly perMs: number; readonly burst?: number }): Promise<number>;
  acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseLease(name: string, owner: string): Promise<void>;
}

export interface ComponentContext {
  /** The component's name in the spec, e.g. `orders.source` or `orders.sink[0]`. */
  readonly name: string;
  readonly flow: string;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Directory of the spec file: relative paths in a config resolve against it. */
  readonly baseDir: string;
  /** Messages per batch the flow asks for. */
  readonly batchSize: number;
  readonly resources: Resources;
  /** Durable state shared with the engine (and with other workers on the same store). */
  readonly store: ComponentStore;
  /** This worker's id: the owner of its claims and leases. */
  readonly owner: string;
}

export interface SourceContext extends ComponentContext {
  /** Aborted when intake must stop (shutdown). The source then stops emitting and returns. */
  readonly signal: AbortSignal;
  /** Hands a batch to the flow; resolves once the flow has room for it (backpressure). */
  emit(batch: Message[]): Promise<Ack>;
  /**
   * Resolves once the flow has room for another batch. A source that reads ahead (a file)
   * waits on it before it reads and parses its next batch, so nothing is parsed beyond the
   * flow's in-flight window. Optional: a context without it has room whenever `emit` does.
   */
  room?(): Promise<void>;
  /** This source's durable checkpoint. */
  readonly checkpoint: CheckpointHandle;
  /**
   * Commits messages to the flow's durable inbox, then resolves: a push source answers its
   * sender only after this. The engine processes the inbox under the flow's policy.
   */
  persist(batch: Message[], options?: PersistOptions): Promise<PersistResult>;
  /** The public HTTP listener. */
  readonly http: HttpRegistrar;
  /** True while the engine accepts new work (false during shutdown). */
  accepting(): boolean;
}

export interface Source {
  /**
   * Sets up the durable position intake starts from (a replication slot, a consumer group),
   * so that everything that happens from now on is delivered once `run` starts. A sync's
   * backfill begins only after this resolved: the copy and the events leave no gap.
   */
  prepare?(): Promise<void>;
  /** Runs intake until the source is exhausted or `ctx.signal` aborts; awaits its own acks. */
  run(ctx: SourceContext): Promise<void>;
  /**
   * Routes the source will add to the public listener when it runs. Declaring them lets the
   * engine refuse two flows on one route before anything starts.
   */
  readonly routes?: readonly { readonly method: string; readonly path: string }[];
  close?(): Promise<void>;
}

export type StepResult = Message | Message[] | null | undefined;

export interface StepContext extends ComponentContext {
  readonly signal: AbortSignal;
  /**
   * For a step with a `settled` hook, in `process`: the same object for every message of one
   * batch, another for the next batch (a step can tell whether two messages settle together).
   */
  readonly batch?: object;
  /**
   * Hands messages this step made on its own (an aggregate window closed by a timer) to the
   * rest of the flow: they are persisted to the flow's inbox first, then run through the
   * steps after this one and the sinks. Ids must be stable: an id persisted again within
   * the inbox's dedupe window is a duplicate and not run twice. The engine provides it.
   */
  forward?(messages: Message[]): Promise<PersistResult>;
}

/** Meta key marking an inbox message that continues after the step at this index. */
export const RESUME_AFTER_STEP = 'ix.resumeAfterStep';

/**
 * A message a step passed on, and how its source message ended; `undefined` when the batch
 * failed as a whole (shutdown, store failure) and its source will deliver it again.
 */
export interface SettledEntry {
  readonly msg: Message;
  readonly outcome: Outcome | undefined;
}

/**
 * A step turns one message into zero (filtered), one, or several (split) messages. A thrown
 * error retries the message under the flow's policy; `permanent()` dead-letters it at once.
 */
export interface Step {
  process(msg: Message, ctx: StepContext): StepResult | Promise<StepResult>;
  /**
   * Called with the messages this step passed on once their source messages settled, before
   * the source's ack resolves (so a dedupe step remembers a key only after the sink accepted
   * the message). A throw leaves the source message unacknowledged: it is delivered again.
   */
  settled?(entries: readonly SettledEntry[], ctx: StepContext): Promise<void>;
  close?(): Promise<void>;
}

export interface SinkContext extends ComponentContext {
  readonly signal: AbortSignal;
}

/** A batch write where some items failed: their indexes in the batch and the errors. */
export interface SinkWriteResult {
  readonly failed: ReadonlyMap<number, unknown>;
}

/**
 * A sink's write resolving means every message in the batch is durably accepted, except
 * those it reports failed. A thrown error fails the whole batch.
 */
export interface Sink {
  write(batch: Message[], ctx: SinkContext): Promise<void | SinkWriteResult>;
  close?(): Promise<void>;
}
