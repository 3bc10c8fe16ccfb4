/** The parsed, validated spec (version 1), with defaults applied. */

export type SpecPath = readonly (string | number)[];

export interface ComponentSpec {
  readonly kind: string;
  readonly config: unknown;
  /** Where the component's config sits in the spec (for error positions). */
  readonly path: SpecPath;
}

export interface RetryPolicy {
  readonly attempts: number;
  readonly backoff: 'exponential' | 'fixed';
  readonly initial: string | number;
  readonly max: string | number;
  readonly jitter: boolean;
}

export interface ErrorPolicy {
  readonly retry: RetryPolicy;
  readonly deadLetter: boolean;
}

export interface FlowSpec {
  readonly name: string;
  readonly description?: string;
  readonly source: ComponentSpec;
  readonly steps: readonly ComponentSpec[];
  readonly sinks: readonly ComponentSpec[];
  readonly concurrency: number;
  readonly batchSize: number;
  /** Per-key order: `key` orders by the message key or by `orderBy`. */
  readonly order: 'none' | 'key';
  /** The ordering key as an expression (implies `order: key`). */
  readonly orderBy?: string;
  readonly errors: ErrorPolicy;
  readonly path: SpecPath;
}

export interface Spec {
  readonly version: 1;
  readonly name?: string;
  readonly description?: string;
  readonly store?: string;
  readonly http: { readonly listen: string };
  readonly admin: { readonly enabled: boolean; readonly listen: string };
  readonly shutdown: { readonly drainTimeout: string | number };
  /** Resource sections (`services`, `mappings` …) by key, then entry name. */
  readonly sections: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly flows: readonly FlowSpec[];
  /** Data synchronization jobs (`syncs:`), by name. */
  readonly syncs: readonly SyncSpec[];
}

/** How a sync stream reads: the whole source each run, changes since a cursor, or events. */
export type SyncMode = 'full' | 'incremental' | 'realtime' | 'backfill-realtime';

/** What a stream does when its record and the target's row with the same key both changed. */
export type SyncConflictPolicy =
  | 'newest-wins'
  | 'source-wins'
  | 'target-wins'
  | { readonly merge: { readonly target: readonly string[] } }
  | { readonly expression: string };

export interface SyncStreamSpec {
  readonly name: string;
  /** Pull source (`http`, `postgres`, `mysql`, `sqlite`): kind and config. */
  readonly from?: ComponentSpec;
  /** Event source for realtime modes: any registered source kind. */
  readonly events?: ComponentSpec;
  readonly target?: ComponentSpec;
  readonly table: string;
  readonly key: readonly string[];
  readonly mode: SyncMode;
  readonly write: 'upsert' | 'append';
  readonly cursor?: string;
  readonly lookback?: string | number;
  readonly vanished: 'delete' | 'keep' | { readonly mark: string };
  readonly deleted?: { readonly field: string; readonly equals: unknown };
  readonly conflict: SyncConflictPolicy;
  readonly version?: string;
  readonly columns?: Readonly<Record<string, string>>;
  readonly batchSize: number;
  readonly strict: boolean;
  readonly path: SpecPath;
}

export interface SyncSpec {
  readonly name: string;
  readonly description?: string;
  readonly schedule?: string;
  readonly every?: string | number;
  /** Streams of this job run at once. */
  readonly concurrency: number;
  /** The default target of the job's streams (a SQL sink kind and its connection). */
  readonly target?: ComponentSpec;
  readonly streams: readonly SyncStreamSpec[];
  readonly path: SpecPath;
}
