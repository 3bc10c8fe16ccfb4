import type pg from 'pg';
import { systemClock, type Clock } from '../../core/clock.js';
import { IxError } from '../../core/errors.js';
import type { StoredMessage } from '../../core/message.js';
import type { Migration } from '../migrations.js';
import type {
  Checkpoint,
  ClaimOptions,
  CompletedItems,
  DeadLetter,
  DeadLetterFilter,
  DeadLetterInput,
  DeliveryAttempt,
  DeliveryAttemptFilter,
  DeliveryAttemptInput,
  EnqueueItem,
  EnqueueOptions,
  LeasedEnqueueItem,
  LeasedEnqueueOptions,
  EnqueueResult,
  QueueItem,
  QueueStats,
  RateLimit,
  RetryOptions,
  Store,
  WorkerHeartbeat,
  WorkerStatus,
} from '../types.js';
import { backoffBounds } from '../retry-backoff.js';
import { createClient, createPool, isUnavailable, resolveConnection, storeError, type PostgresConnectionOptions, type ResolvedConnection } from './connection.js';
import { migrateSchema, schemaVersion } from './migrate.js';
import { postgresMigrations } from './migrations.js';
import * as Q from './queries.js';
import { Waker } from './wake.js';

export interface PostgresStoreOptions extends PostgresConnectionOptions {
  /** @defaultValue the system clock */
  readonly clock?: Clock;
  /**
   * Apply pending migrations when opening (as `ix migrate` does). With `false` the store
   * refuses a schema that is behind (`IX_STORE_NOT_MIGRATED`).
   * @defaultValue true
   */
  readonly migrate?: boolean;
  /** Migrations to apply; the engine's own by default. */
  readonly migrations?: readonly Migration[];
  /** A worker whose last heartbeat is older than this is not listed as live. @defaultValue 15000 */
  readonly workerTimeoutMs?: number;
}

type Row = Record<string, unknown>;

/**
 * The store for several workers: one PostgreSQL schema shared by every `ix run` process.
 * Claims take rows with `FOR UPDATE SKIP LOCKED` and lease them (`lease_until`,
 * `lease_owner`), so a dead worker's claims come back when their lease passes;
 * `LISTEN/NOTIFY` wakes idle workers; rate limits and leader leases are rows locked by one
 * upsert each, so they hold across processes.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres';
  readonly schema: string;
  /** The `LISTEN/NOTIFY` channel (one per schema). */
  readonly channel: string;
  /** Commits that take a message over: durable before they resolve. */
  private readonly pool: pg.Pool;
  /** Everything else: commits of progress, asynchronous (see `NamedQuery.durable`), and reads. */
  private readonly progress: pg.Pool;
  private readonly clock: Clock;
  private readonly waker: Waker;
  private readonly workerTimeoutMs: number;
  private closed = false;
  /**
   * The row (`seq`) of each message this store claimed and has not acknowledged yet, by
   * queue and id, so `complete` deletes by primary key. A seq is never reused, so a stale
   * entry matches no row; an id it does not know is completed by (queue, id) as before.
   */
  private readonly claimed = new Map<string, Map<string, number>>();
  /** Entries in `claimed`, over every queue. */
  private claimedCount = 0;
  /**
   * Per queue with a backlog (its last claim here came back full), where that claim stopped
   * in the queue's order: the next claim walks on from there (`claimItemsAfter`) instead of
   * stepping over every row the workers hold. Rows behind it can become ready again (a
   * release or an expired lease elsewhere, a rolled-back claim), so a claim walks from the
   * start when the walk from the cursor comes back short, when `FULL_WALK_MS` passed since
   * the last walk from the start, and after this store released or rescheduled an item of
   * the queue.
   */
  private readonly cursors = new Map<string, ClaimCursor>();

  private constructor(pool: pg.Pool, c: ResolvedConnection, options: PostgresStoreOptions) {
    this.pool = pool;
    this.progress = createPool(c, progressPoolSize(c.max), { asyncCommit: true });
    this.schema = c.schema;
    this.channel = `ix:${c.schema}`;
    this.clock = options.clock ?? systemClock;
    this.workerTimeoutMs = options.workerTimeoutMs ?? 15_000;
    this.waker = new Waker({ channel: this.channel, clock: this.clock, connect: () => createClient(c) });
  }

  /** Connects, migrates (unless told not to) and returns the store. */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const c = resolveConnection(options);
    const pool = createPool(c, durablePoolSize(c.max));
    try {
      const migrations = options.migrations ?? postgresMigrations;
      if (options.migrate === false) {
        const known = migrations.reduce((m, x) => Math.max(m, x.version), 0);
        const found = await schemaVersion(pool, c.schema);
        if (found > known) throw new IxError('IX_STORE_TOO_NEW', { found, known });
        if (found < known) throw new IxError('IX_STORE_NOT_MIGRATED', { found, known });
      } else {
        await migrateSchema(pool, c.schema, migrations);
      }
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return new PostgresStore(pool, c, options);
  }

  /** Connections open and idle, and callers waiting for one (for metrics and `ix status`). */
  poolStats(): { total: number; idle: number; waiting: number } {
    const [d, p] = [this.pool, this.progress];
    return { total: d.totalCount + p.totalCount, idle: d.idleCount + p.idleCount, waiting: d.waitingCount + p.waitingCount };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.waker.close();
    await Promise.all([this.pool.end(), this.progress.end()]);
  }

  // ---- queues ----

  async enqueue(queue: string, items: readonly EnqueueItem[], options: EnqueueOptions = {}): Promise<EnqueueResult> {
    if (items.length === 0) return { inserted: 0, duplicates: 0, insertedFlags: [] };
    const now = this.clock.now();
    const params: unknown[] = [
      queue,
      items.map((i) => i.message.id),
      items.map((i) => JSON.stringify(i.message)),
      items.map((i) => i.availableAt ?? now),
      now,
      this.channel,
    ];
    const cursor = this.cursors.get(queue);
    if (cursor && items.some((i) => (i.availableAt ?? now) < cursor.at)) this.cursors.delete(queue);
    const ttl = options.dedupeTtlMs;
    const rows = ttl === undefined ? await this.query(Q.enqueueItems, params) : await this.query(Q.enqueueItemsDeduped, [...params, now + ttl]);
    const fresh = new Set(rows.map((r) => r['id'] as string));
    const flags = items.map((i) => fresh.delete(i.message.id));
    const inserted = rows.length;
    return { inserted, duplicates: items.length - inserted, insertedFlags: flags };
  }

  async enqueueLeased(queue: string, owner: string, items: readonly LeasedEnqueueItem[], options: LeasedEnqueueOptions): Promise<EnqueueResult> {
    if (items.length === 0) return { inserted: 0, duplicates: 0, insertedFlags: [] };
    const now = this.clock.now();
    const params: unknown[] = [queue, items.map((i) => i.message.id), items.map((i) => JSON.stringify(i.message)), now + options.leaseMs, now, owner];
    const ttl = options.dedupeTtlMs;
    const rows = ttl === undefined ? await this.query(Q.enqueueItemsLeased, params) : await this.query(Q.enqueueItemsLeasedDeduped, [...params, now + ttl]);
    const held = new Set(rows.map((r) => r['id'] as string));
    const flags = items.map((i) => held.delete(i.message.id));
    return { inserted: rows.length, duplicates: items.length - rows.length, insertedFlags: flags };
  }

  async claim(queue: string, owner: string, options: ClaimOptions): Promise<QueueItem[]> {
    const now = this.clock.now();
    const lease = now + options.leaseMs;
    const cursor = this.cursors.get(queue);
    let rows: Row[] = [];
    let full = cursor === undefined || now - cursor.fullAt >= FULL_WALK_MS;
    if (!full && cursor) {
      rows = await this.query(Q.claimItemsAfter, [queue, now, options.limit, owner, lease, cursor.at, cursor.seq]);
      full = rows.length < options.limit;
    }
    if (full) {
      const more = await this.query(Q.claimItems, [queue, now, options.limit - rows.length, owner, lease]);
      rows = rows.length === 0 ? more : rows.concat(more);
    }
    rows.sort(bySeq);
    this.advance(queue, rows, options.limit, full ? now : (cursor as ClaimCursor).fullAt);
    // Leases that were never acknowledged (their lease expired) would pile up here: past a
    // bound the map starts over, and completions fall back to ids.
    if (this.claimedCount > MAX_CLAIMED) {
      this.claimed.clear();
      this.claimedCount = 0;
    }
    let seqs = this.claimed.get(queue);
    if (!seqs) this.claimed.set(queue, (seqs = new Map()));
    const items: QueueItem[] = new Array<QueueItem>(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i] as Row;
      const id = r['id'] as string;
      if (!seqs.has(id)) this.claimedCount++;
      seqs.set(id, r['seq'] as number);
      items[i] = toQueueItem(queue, r);
    }
    return items;
  }

  /**
   * Moves the queue's cursor to the last claimed row in the queue's order (available_at, seq).
   * A claim that came back short drops it: the queue has no backlog to walk on into, and the
   * next claim walks from the start in one statement.
   */
  private advance(queue: string, rows: readonly Row[], limit: number, fullAt: number): void {
    if (rows.length < limit) {
      this.cursors.delete(queue);
      return;
    }
    let at = -Infinity;
    let seq = -Infinity;
    for (const r of rows) {
      const a = r['available_at'] as number;
      const s = r['seq'] as number;
      if (a > at || (a === at && s > seq)) {
        at = a;
        seq = s;
      }
    }
    this.cursors.set(queue, { at, seq, fullAt });
  }

  async complete(queue: string, owner: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const seqs: number[] = [];
    const unknown: string[] = [];
    const known = this.claimed.get(queue);
    for (const id of ids) {
      const seq = known?.get(id);
      if (seq === undefined) unknown.push(id);
      else {
        known?.delete(id);
        this.claimedCount--;
        seqs.push(seq);
      }
    }
    // an array literal of integers is sent as text as it is (no per-element escaping)
    if (seqs.length > 0) await this.query(Q.completeSeqs, [`{${seqs.join(',')}}`, owner]);
    if (unknown.length > 0) await this.query(Q.completeItems, [queue, unknown, owner]);
  }

  /** Forgets claims that are no longer completed by seq; the next claim of the queue walks from the start. */
  private forget(queue: string, ids: readonly string[]): void {
    this.cursors.delete(queue);
    const known = this.claimed.get(queue);
    if (!known) return;
    for (const id of ids) if (known.delete(id)) this.claimedCount--;
  }

  async retry(queue: string, owner: string, id: string, options: RetryOptions): Promise<void> {
    this.forget(queue, [id]);
    const count = options.countAttempt === false ? 0 : 1;
    const common = [queue, owner, id] as const;
    const b = options.backoff;
    if (b === undefined) {
      await this.query(Q.retryItem, [...common, options.availableAt, options.error ?? null, this.clock.now(), this.channel, count]);
      return;
    }
    const { initialMs, maxMs } = backoffBounds(b);
    await this.query(Q.retryItemBackoff, [...common, initialMs, options.error ?? null, this.clock.now(), this.channel, count, maxMs, b.kind === 'exponential', b.jitter]);
  }

  async release(queue: string, owner: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    this.forget(queue, ids);
    await this.query(Q.releaseItems, [queue, owner, ids, this.channel]);
  }

  async extendLease(queue: string, owner: string, ids: readonly string[], leaseMs: number): Promise<string[]> {
    if (ids.length === 0) return [];
    const now = this.clock.now();
    const rows = await this.query(Q.extendLeases, [queue, owner, ids, now, now + leaseMs]);
    const held = new Set(rows.map((r) => r['id'] as string));
    return ids.filter((id) => held.has(id));
  }

  async queueStats(queue?: string): Promise<QueueStats> {
    const now = this.clock.now();
    const rows = queue === undefined ? await this.query(Q.queueStatsAll, [now]) : await this.query(Q.queueStatsOne, [now, queue]);
    const row = rows[0] ?? {};
    return { ready: Number(row['ready'] ?? 0), scheduled: Number(row['scheduled'] ?? 0), leased: Number(row['leased'] ?? 0) };
  }

  async nextAvailableAt(queue: string): Promise<number | undefined> {
    const rows = await this.query(Q.nextAvailable, [queue]);
    const at = rows[0]?.['at'];
    return typeof at === 'number' ? at : undefined;
  }

  /**
   * Waits for a notification that `queue` got ready work (from any process), at most
   * `timeoutMs` (a poll, so a missed notification costs latency only). True when notified.
   */
  waitForWork(queue: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return this.waker.wait(queue, timeoutMs, signal);
  }

  /** Whether the LISTEN connection is up. */
  get listening(): boolean {
    return this.waker.listening;
  }

  // ---- checkpoints ----

  async getCheckpoint(key: string): Promise<string | undefined> {
    const rows = await this.query(Q.getCheckpoint, [key]);
    return rows[0] ? (rows[0]['value'] as string) : undefined;
  }

  async setCheckpoint(key: string, value: string): Promise<void> {
    await this.query(Q.setCheckpoint, [key, value, this.clock.now()]);
  }

  async deleteCheckpoint(key: string): Promise<void> {
    await this.query(Q.deleteCheckpoint, [key]);
  }

  async listCheckpoints(prefix: string): Promise<Checkpoint[]> {
    const rows = await this.query(Q.listCheckpoints, [prefix]);
    return rows.map((r) => ({ key: r['key'] as string, value: r['value'] as string, updatedAt: r['updated_at'] as number }));
  }

  // ---- idempotency keys ----

  async remember(scope: string, keys: readonly string[], ttlMs: number): Promise<boolean[]> {
    if (keys.length === 0) return [];
    const now = this.clock.now();
    const distinct = [...new Set(keys)].sort();
    const rows = await this.query(Q.rememberKeys, [scope, distinct, now + ttlMs, now]);
    const fresh = new Set(rows.map((r) => r['key'] as string));
    // A key repeated within one call is new once, at its first position.
    return keys.map((k) => fresh.delete(k));
  }

  async seen(scope: string, keys: readonly string[]): Promise<boolean[]> {
    if (keys.length === 0) return [];
    const rows = await this.query(Q.seenKeys, [scope, [...new Set(keys)], this.clock.now()]);
    const found = new Set(rows.map((r) => r['key'] as string));
    return keys.map((k) => found.has(k));
  }

  async purgeExpired(): Promise<number> {
    const r = await this.exec(Q.purgeKeys, [this.clock.now()]);
    return r.rowCount ?? 0;
  }

  // ---- rate limits ----

  async acquireRate(key: string, limit: RateLimit): Promise<number> {
    const interval = limit.perMs / limit.count;
    const tolerance = (Math.max(1, limit.burst ?? 1) - 1) * interval;
    // `now` is read once a connection is ours, so time spent queueing for one does not make
    // an idle limiter grant a slot that is already in the past.
    const rows = await this.withClient(async (client) => (await client.query<Row>({ ...Q.acquireRate, values: [key, this.clock.now(), interval] })).rows);
    const tat = Number(rows[0]?.['tat']);
    const allowAt = tat - interval - tolerance;
    // Measured from when the answer arrived: time spent waiting for the row lock is not
    // added on top of the slot (that would bunch callers up behind a busy limiter).
    return Math.ceil(Math.max(0, allowAt - this.clock.now()));
  }

  // ---- leases ----

  async acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = this.clock.now();
    const rows = await this.query(Q.takeLease, [name, owner, now + ttlMs, now]);
    return rows.length > 0;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.query(Q.releaseLease, [name, owner]);
  }

  // ---- dead letters ----

  async deadLetter(entries: readonly DeadLetterInput[]): Promise<void> {
    if (entries.length === 0) return;
    await this.query(Q.insertDeadLetters, [
      entries.map((e) => e.flow),
      entries.map((e) => e.message.id),
      entries.map((e) => JSON.stringify(e.message)),
      entries.map((e) => (e.failed === undefined ? null : JSON.stringify(e.failed))),
      entries.map((e) => e.stage),
      entries.map((e) => e.reason),
      entries.map((e) => e.attempts),
      this.clock.now(),
      entries.map((e) => e.replayQueue ?? null),
    ]);
  }

  async recordDeliveryAttempts(entries: readonly DeliveryAttemptInput[], completed?: CompletedItems): Promise<void> {
    // two statements, not one transaction: a completion whose record is lost is only a
    // missing history line, and a record without its completion a redelivery (at-least-once)
    if (completed) await this.complete(completed.queue, completed.owner, completed.ids);
    if (entries.length === 0) return;
    await this.query(Q.insertDeliveryAttempts, [
      entries.map((e) => e.flow),
      entries.map((e) => e.outbox),
      entries.map((e) => e.messageId),
      entries.map((e) => e.attempt),
      entries.map((e) => e.url),
      entries.map((e) => e.at),
      entries.map((e) => e.status ?? null),
      entries.map((e) => Math.round(e.latencyMs)),
      entries.map((e) => e.outcome),
      entries.map((e) => e.error ?? null),
      entries.map((e) => e.responseExcerpt ?? null),
      entries.map((e) => e.nextAt ?? null),
    ]);
  }

  async listDeliveryAttempts(filter: DeliveryAttemptFilter = {}): Promise<DeliveryAttempt[]> {
    const rows = await this.query(Q.listDeliveryAttempts, [filter.afterId ?? 0, filter.flow ?? null, filter.outbox ?? null, filter.messageId ?? null, filter.limit ?? 100]);
    return rows.map(toDeliveryAttempt);
  }

  async purgeDeliveryAttempts(before: number, outbox?: string): Promise<number> {
    const r = outbox === undefined ? await this.exec(Q.purgeDeliveryAttempts, [before]) : await this.exec(Q.purgeOutboxDeliveryAttempts, [before, outbox]);
    return r.rowCount ?? 0;
  }

  async listDeadLetters(filter: DeadLetterFilter = {}): Promise<DeadLetter[]> {
    const params: unknown[] = [filter.afterId ?? 0, filter.limit ?? 100];
    const rows =
      filter.flow === undefined ? await this.query(Q.listDeadLetters, params) : await this.query(Q.listDeadLettersOfFlow, [...params, filter.flow]);
    return rows.map(toDeadLetter);
  }

  async getDeadLetter(id: number): Promise<DeadLetter | undefined> {
    if (!Number.isSafeInteger(id)) return undefined;
    const rows = await this.query(Q.getDeadLetter, [id]);
    return rows[0] ? toDeadLetter(rows[0]) : undefined;
  }

  async countDeadLetters(flow?: string): Promise<number> {
    const rows = flow === undefined ? await this.query(Q.countDeadLetters, []) : await this.query(Q.countDeadLettersOfFlow, [flow]);
    return Number(rows[0]?.['n'] ?? 0);
  }

  async replayDeadLetters(ids: readonly number[], queueFor: (entry: DeadLetter) => string): Promise<number[]> {
    const wanted = ids.filter((id) => Number.isSafeInteger(id));
    if (wanted.length === 0) return [];
    const now = this.clock.now();
    // a replayed entry keeps its row's place in the queue if it still has one
    this.cursors.clear();
    return this.transaction(async (client) => {
      const locked = await client.query(Q.lockDeadLetters, [wanted]);
      const byId = new Map(locked.rows.map((r: Row) => [r['id'] as number, toDeadLetter(r)]));
      const moved: number[] = [];
      const queues = new Set<string>();
      for (const id of ids) {
        const entry = byId.get(id);
        if (!entry) continue;
        byId.delete(id);
        const queue = queueFor(entry);
        await client.query(Q.requeueDeadLetter, [queue, entry.message.id, JSON.stringify(entry.message), now]);
        queues.add(queue);
        moved.push(id);
      }
      if (moved.length > 0) await client.query(Q.deleteDeadLetters, [moved]);
      for (const queue of queues) await client.query('SELECT pg_notify($1, $2)', [this.channel, queue]);
      return moved;
    });
  }

  async deleteDeadLetters(ids: readonly number[]): Promise<number> {
    const wanted = ids.filter((id) => Number.isSafeInteger(id));
    if (wanted.length === 0) return 0;
    const r = await this.exec(Q.deleteDeadLetters, [wanted]);
    return r.rowCount ?? 0;
  }

  // ---- workers ----

  async heartbeat(worker: WorkerHeartbeat): Promise<void> {
    await this.query(Q.heartbeatWorker, [worker.id, worker.host, worker.pid, this.clock.now(), JSON.stringify(worker.info ?? {})]);
  }

  async removeWorker(id: string): Promise<void> {
    await this.query(Q.removeWorker, [id]);
  }

  async listWorkers(): Promise<WorkerStatus[]> {
    const now = this.clock.now();
    // Rows of workers gone for a long time are removed; recently gone ones are just not listed.
    await this.query(Q.purgeWorkers, [now - this.workerTimeoutMs * 20]);
    const rows = await this.query(Q.listWorkers, [now, now - this.workerTimeoutMs]);
    return rows.map((r) => ({
      id: r['id'] as string,
      host: r['host'] as string,
      pid: r['pid'] as number,
      startedAt: r['started_at'] as number,
      heartbeatAt: r['heartbeat_at'] as number,
      info: JSON.parse(r['info'] as string) as Record<string, unknown>,
      holds: JSON.parse(r['holds'] as string) as Record<string, number>,
      leases: JSON.parse(r['leases'] as string) as string[],
    }));
  }

  // ---- plumbing ----

  private async query(query: Q.NamedQuery, values: unknown[]): Promise<Row[]> {
    return (await this.exec(query, values)).rows;
  }

  private async exec(query: Q.NamedQuery, values: unknown[]): Promise<pg.QueryResult<Row>> {
    try {
      return await (query.durable ? this.pool : this.progress).query<Row>({ name: query.name, text: query.text, values });
    } catch (err) {
      throw storeError(err);
    }
  }

  /** A connection of the progress pool for `fn` (statements whose commits are progress). */
  private async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.progress.connect();
    } catch (err) {
      throw storeError(err);
    }
    let broken: Error | undefined;
    try {
      return await fn(client);
    } catch (err) {
      if (isUnavailable(err)) broken = err as Error;
      throw storeError(err);
    } finally {
      client.release(broken);
    }
  }

  /** A durable transaction (the durable pool): what it commits is on disk once it resolves. */
  private async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw storeError(err);
    }
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: unknown) => {
        broken = e instanceof Error ? e : new Error(String(e));
      });
      throw storeError(err);
    } finally {
      client.release(broken);
    }
  }
}

/** Connections for durable commits: half of the limit, at least one. */
const durablePoolSize = (max: number): number => Math.max(1, Math.ceil(max / 2));
/** Connections for progress: the rest of the limit, at least one. */
const progressPoolSize = (max: number): number => Math.max(1, max - durablePoolSize(max));

/** Claimed rows remembered for completion by seq, at most (a few batches of every flow). */
const MAX_CLAIMED = 100_000;

/** The longest a store's claims of a queue walk on from its cursor before one walks from the start. */
const FULL_WALK_MS = 1000;

interface ClaimCursor {
  readonly at: number;
  readonly seq: number;
  /** When a claim last walked from the start of the queue (the store's clock). */
  readonly fullAt: number;
}

const bySeq = (a: Row, b: Row): number => (a['seq'] as number) - (b['seq'] as number);

function toQueueItem(queue: string, row: Row): QueueItem {
  const item: QueueItem = {
    queue,
    message: JSON.parse(row['message'] as string) as StoredMessage,
    attempts: row['attempts'] as number,
    enqueuedAt: row['enqueued_at'] as number,
  };
  if (typeof row['last_error'] === 'string') (item as { lastError?: string }).lastError = row['last_error'];
  return item;
}

function toDeadLetter(row: Row): DeadLetter {
  const d: DeadLetter = {
    id: row['id'] as number,
    flow: row['flow'] as string,
    message: JSON.parse(row['message'] as string) as StoredMessage,
    stage: row['stage'] as string,
    reason: row['reason'] as string,
    attempts: row['attempts'] as number,
    createdAt: row['created_at'] as number,
  };
  if (typeof row['failed'] === 'string') (d as { failed?: StoredMessage }).failed = JSON.parse(row['failed']) as StoredMessage;
  if (typeof row['replay_queue'] === 'string') (d as { replayQueue?: string }).replayQueue = row['replay_queue'];
  return d;
}

function toDeliveryAttempt(row: Row): DeliveryAttempt {
  const a: { -readonly [K in keyof DeliveryAttempt]: DeliveryAttempt[K] } = {
    id: Number(row['id']),
    flow: row['flow'] as string,
    outbox: row['outbox'] as string,
    messageId: row['message_id'] as string,
    attempt: row['attempt'] as number,
    url: row['url'] as string,
    at: Number(row['at']),
    latencyMs: row['latency_ms'] as number,
    outcome: row['outcome'] as DeliveryAttempt['outcome'],
  };
  if (row['status'] !== null && row['status'] !== undefined) a.status = Number(row['status']);
  if (typeof row['error'] === 'string') a.error = row['error'];
  if (typeof row['response_excerpt'] === 'string') a.responseExcerpt = row['response_excerpt'];
  if (row['next_at'] !== null && row['next_at'] !== undefined) a.nextAt = Number(row['next_at']);
  return a;
}
