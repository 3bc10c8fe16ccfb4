import { closeSync, fdatasync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { systemClock, type Clock } from '../../core/clock.js';
import { IxError } from '../../core/errors.js';
import type { StoredMessage } from '../../core/message.js';
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
  EnqueueResult,
  LeasedEnqueueItem,
  LeasedEnqueueOptions,
  QueueItem,
  QueueStats,
  RateLimit,
  RetryOptions,
  Store,
  WorkerHeartbeat,
  WorkerStatus,
} from '../types.js';
import { backoffBounds } from '../retry-backoff.js';
import { WalCheckpointer } from './checkpointer.js';
import { sqliteMigrations } from './migrations.js';
import type { Migration } from '../migrations.js';

export interface SqliteStoreOptions {
  readonly clock?: Clock;
  /**
   * `full` (default): a commit that takes a message over (enqueue, dead letter, replay) is on
   * disk before its promise resolves, so what was acknowledged survives a power loss. The fsync
   * runs on the thread pool and is shared by every commit made meanwhile (group commit).
   * Commits that only record progress (claims, completions, retries, checkpoints, idempotency
   * keys, delivery attempts) skip their own fsync and become durable with the next one: a power
   * loss can undo recent progress, which means a redelivery (at-least-once), never a loss.
   * `normal`: nothing is fsynced on commit; survives a process crash only.
   */
  readonly synchronous?: 'full' | 'normal';
  /** Migrations to apply; the engine's own by default. */
  readonly migrations?: readonly Migration[];
}

type Row = Record<string, unknown>;

/** Write transactions after which checkpoints move off the event loop (tests rarely get there). */
const CHECKPOINTER_AFTER_WRITES = 500;
/** A worker whose last heartbeat is older than this is not listed as live (as on PostgreSQL). */
const WORKER_TIMEOUT_MS = 15_000;
/** The backoff's ceiling for a row, in whole ms (see `retryBackoff`). */
const SQLITE_CEILING = `CAST(min(@max, @initial * CASE WHEN @doubling THEN 1 << min(max(attempts + @count - 1, 0), 52) ELSE 1 END) AS INTEGER)`;

/** The embedded default store: one SQLite file in WAL mode, one writer at a time. */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly path: string;
  private readonly db: Database.Database;
  private readonly clock: Clock;
  private readonly stmts: ReturnType<SqliteStore['prepare']>;
  private readonly fullSync: boolean;
  /** WAL mode on a file: durable commits can fsync the WAL off the event loop. */
  private readonly walFile: string | undefined;
  private walFd: number | undefined;
  private walSync: Promise<void> | undefined;
  private walSyncNext: Promise<void> | undefined;
  /** Write transactions so far; a busy store moves its checkpoints to a worker thread. */
  private writes = 0;
  private checkpointer: WalCheckpointer | undefined;
  /** One `BEGIN IMMEDIATE` wrapper for every write transaction (better-sqlite3 builds four per `transaction()`). */
  private readonly immediate: (fn: () => unknown) => unknown;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path;
    this.clock = options.clock ?? systemClock;
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    const mode = this.db.pragma('journal_mode = WAL', { simple: true }) as string;
    this.walFile = mode === 'wal' && !this.db.memory ? `${this.db.name}-wal` : undefined;
    this.fullSync = options.synchronous !== 'normal';
    // In WAL mode the durable commits fsync the WAL themselves (durableTx); without WAL, FULL.
    this.db.pragma(`synchronous = ${this.fullSync && this.walFile === undefined ? 'FULL' : 'NORMAL'}`);
    this.db.pragma('busy_timeout = 10000');
    migrate(this.db, options.migrations ?? sqliteMigrations);
    this.stmts = this.prepare();
    this.immediate = this.db.transaction((fn: () => unknown) => fn()).immediate;
  }

  private prepare() {
    const db = this.db;
    return {
      insert: db.prepare(
        'INSERT OR IGNORE INTO queue_items (queue, id, message, available_at, enqueued_at) VALUES (?, ?, ?, ?, ?)',
      ),
      insertDeduped: db.prepare(
        'INSERT OR IGNORE INTO queue_items (queue, id, message, available_at, enqueued_at, dedupe_until) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      insertLeased: db.prepare(
        'INSERT OR IGNORE INTO queue_items (queue, id, message, available_at, enqueued_at, lease_owner, dedupe_until) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      claim: db.prepare(
        `UPDATE queue_items SET lease_owner = ?, available_at = ?
         WHERE seq IN (SELECT seq FROM queue_items WHERE queue = ? AND available_at <= ? ORDER BY available_at, seq LIMIT ?)
         RETURNING queue, message, attempts, enqueued_at, last_error, seq`,
      ),
      complete: db.prepare('DELETE FROM queue_items WHERE queue = ? AND id = ? AND lease_owner = ? RETURNING dedupe_until'),
      // an id taken with a dedupe window is remembered once it leaves its queue (completed or
      // dead-lettered): until then the queue's own (queue, id) key answers its duplicates
      keepKey: db.prepare(
        `INSERT INTO idempotency_keys (scope, key, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (scope, key) DO UPDATE SET expires_at = excluded.expires_at WHERE excluded.expires_at > idempotency_keys.expires_at`,
      ),
      retry: db.prepare(
        'UPDATE queue_items SET lease_owner = NULL, available_at = ?, attempts = attempts + ?, last_error = COALESCE(?, last_error) WHERE queue = ? AND id = ? AND lease_owner = ?',
      ),
      // Retry number n (attempts once this one is counted) waits min(max, initial·2^(n-1))
      // (fixed: min(max, initial)), or under full jitter a uniform draw in [0, that]. An
      // integer product that overflows becomes a real, which min() then bounds.
      retryBackoff: db.prepare(
        `UPDATE queue_items SET lease_owner = NULL,
                available_at = @now + CASE WHEN @jitter THEN (random() & 9223372036854775807) % (${SQLITE_CEILING} + 1) ELSE ${SQLITE_CEILING} END,
                attempts = attempts + @count, last_error = COALESCE(@error, last_error)
          WHERE queue = @queue AND id = @id AND lease_owner = @owner`,
      ),
      release: db.prepare('UPDATE queue_items SET lease_owner = NULL, available_at = ? WHERE queue = ? AND id = ? AND lease_owner = ?'),
      extend: db.prepare(
        'UPDATE queue_items SET available_at = ? WHERE queue = ? AND id = ? AND lease_owner = ? AND available_at > ? RETURNING id',
      ),
      statsQueue: db.prepare(
        `SELECT
           COALESCE(SUM(CASE WHEN available_at <= @now THEN 1 ELSE 0 END), 0) AS ready,
           COALESCE(SUM(CASE WHEN available_at > @now AND lease_owner IS NULL THEN 1 ELSE 0 END), 0) AS scheduled,
           COALESCE(SUM(CASE WHEN available_at > @now AND lease_owner IS NOT NULL THEN 1 ELSE 0 END), 0) AS leased
         FROM queue_items WHERE queue = @queue`,
      ),
      statsAll: db.prepare(
        `SELECT
           COALESCE(SUM(CASE WHEN available_at <= @now THEN 1 ELSE 0 END), 0) AS ready,
           COALESCE(SUM(CASE WHEN available_at > @now AND lease_owner IS NULL THEN 1 ELSE 0 END), 0) AS scheduled,
           COALESCE(SUM(CASE WHEN available_at > @now AND lease_owner IS NOT NULL THEN 1 ELSE 0 END), 0) AS leased
         FROM queue_items`,
      ),
      nextAvailable: db.prepare('SELECT MIN(available_at) AS at FROM queue_items WHERE queue = ? AND lease_owner IS NULL'),
      getCheckpoint: db.prepare('SELECT value FROM checkpoints WHERE key = ?'),
      setCheckpoint: db.prepare(
        'INSERT INTO checkpoints (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
      ),
      deleteCheckpoint: db.prepare('DELETE FROM checkpoints WHERE key = ?'),
      // the prefix taken literally: no LIKE pattern (a key may hold % or _)
      listCheckpoints: db.prepare('SELECT key, value, updated_at FROM checkpoints WHERE substr(key, 1, length(@prefix)) = @prefix ORDER BY key'),
      seen: db.prepare('SELECT 1 FROM idempotency_keys WHERE scope = ? AND key = ? AND expires_at > ?'),
      remember: db.prepare(
        `INSERT INTO idempotency_keys (scope, key, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (scope, key) DO UPDATE SET expires_at = excluded.expires_at WHERE idempotency_keys.expires_at <= ?
         RETURNING 1`,
      ),
      purge: db.prepare('DELETE FROM idempotency_keys WHERE expires_at <= ?'),
      getRate: db.prepare('SELECT tat FROM rate_limits WHERE key = ?'),
      setRate: db.prepare('INSERT INTO rate_limits (key, tat) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET tat = excluded.tat'),
      takeLease: db.prepare(
        `INSERT INTO leases (name, owner, expires_at) VALUES (@name, @owner, @expires)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
         WHERE leases.owner = excluded.owner OR leases.expires_at <= @now
         RETURNING owner`,
      ),
      releaseLease: db.prepare('DELETE FROM leases WHERE name = ? AND owner = ?'),
      insertDead: db.prepare(
        'INSERT INTO dead_letters (flow, message_id, message, failed, stage, reason, attempts, created_at, replay_queue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      listDead: db.prepare('SELECT * FROM dead_letters WHERE id > ? ORDER BY id LIMIT ?'),
      listDeadFlow: db.prepare('SELECT * FROM dead_letters WHERE flow = ? AND id > ? ORDER BY id LIMIT ?'),
      getDead: db.prepare('SELECT * FROM dead_letters WHERE id = ?'),
      countDead: db.prepare('SELECT COUNT(*) AS n FROM dead_letters'),
      countDeadFlow: db.prepare('SELECT COUNT(*) AS n FROM dead_letters WHERE flow = ?'),
      deleteDead: db.prepare('DELETE FROM dead_letters WHERE id = ?'),
      insertAttempt: db.prepare(
        `INSERT INTO delivery_attempts (flow, outbox, message_id, attempt, url, at, status, latency_ms, outcome, error, response_excerpt, next_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      listAttempts: db.prepare(
        `SELECT * FROM delivery_attempts
         WHERE id > @after AND (@flow IS NULL OR flow = @flow) AND (@outbox IS NULL OR outbox = @outbox)
           AND (@messageId IS NULL OR message_id = @messageId)
         ORDER BY id LIMIT @limit`,
      ),
      purgeAttempts: db.prepare('DELETE FROM delivery_attempts WHERE at < ?'),
      purgeOutboxAttempts: db.prepare('DELETE FROM delivery_attempts WHERE at < ? AND outbox = ?'),
    };
  }

  async close(): Promise<void> {
    await this.checkpointer?.stop();
    this.checkpointer = undefined;
    await Promise.allSettled([this.walSync, this.walSyncNext]);
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.walFd = undefined;
    if (this.db.open) this.db.close();
  }

  async enqueue(queue: string, items: readonly EnqueueItem[], options: EnqueueOptions = {}): Promise<EnqueueResult> {
    const now = this.clock.now();
    const flags: boolean[] = [];
    let inserted = 0;
    const ttl = options.dedupeTtlMs;
    const until = ttl === undefined ? null : now + ttl;
    await this.durableTx(() => {
      for (const item of items) {
        const id = item.message.id;
        if (until !== null && this.stmts.seen.get(queue, id, now) !== undefined) {
          flags.push(false);
          continue;
        }
        const ok = this.stmts.insertDeduped.run(queue, id, JSON.stringify(item.message), item.availableAt ?? now, now, until).changes > 0;
        flags.push(ok);
        if (ok) inserted++;
      }
    });
    return { inserted, duplicates: items.length - inserted, insertedFlags: flags };
  }

  async enqueueLeased(queue: string, owner: string, items: readonly LeasedEnqueueItem[], options: LeasedEnqueueOptions): Promise<EnqueueResult> {
    const now = this.clock.now();
    // a leased row is one whose available_at is its lease expiry (as `claim` writes it)
    const leasedUntil = now + options.leaseMs;
    const ttl = options.dedupeTtlMs;
    const until = ttl === undefined ? null : now + ttl;
    const flags = await this.durableTx(() =>
      items.map((item) => {
        const id = item.message.id;
        if (until !== null && this.stmts.seen.get(queue, id, now) !== undefined) return false;
        return this.stmts.insertLeased.run(queue, id, JSON.stringify(item.message), leasedUntil, now, owner, until).changes > 0;
      }),
    );
    const inserted = flags.filter(Boolean).length;
    return { inserted, duplicates: items.length - inserted, insertedFlags: flags };
  }

  async claim(queue: string, owner: string, options: ClaimOptions): Promise<QueueItem[]> {
    const now = this.clock.now();
    const rows = this.tx(() => this.stmts.claim.all(owner, now + options.leaseMs, queue, now, options.limit) as Row[]);
    rows.sort((a, b) => (a['seq'] as number) - (b['seq'] as number));
    return Promise.resolve(rows.map(toQueueItem));
  }

  async complete(queue: string, owner: string, ids: readonly string[]): Promise<void> {
    const now = this.clock.now();
    this.tx(() => {
      for (const id of ids) this.completeOne(queue, owner, id, now);
    });
    return Promise.resolve();
  }

  /**
   * Takes an item out of its queue. An id enqueued with a dedupe window is written to the
   * idempotency keys only now, in the completion's larger group, instead of with each small
   * enqueue: until it leaves, the queue's (queue, id) key turns its duplicates away.
   */
  private completeOne(queue: string, owner: string, id: string, now: number): void {
    const row = this.stmts.complete.get(queue, id, owner) as Row | undefined;
    const until = row?.['dedupe_until'];
    if (typeof until === 'number' && until > now) this.stmts.keepKey.run(queue, id, until);
  }

  async retry(queue: string, owner: string, id: string, options: RetryOptions): Promise<void> {
    const count = options.countAttempt === false ? 0 : 1;
    const b = options.backoff;
    if (b === undefined) this.stmts.retry.run(options.availableAt, count, options.error ?? null, queue, id, owner);
    else {
      const { initialMs, maxMs } = backoffBounds(b);
      this.stmts.retryBackoff.run({
        now: this.clock.now(),
        initial: initialMs,
        max: maxMs,
        doubling: b.kind === 'exponential' ? 1 : 0,
        jitter: b.jitter ? 1 : 0,
        count,
        error: options.error ?? null,
        queue,
        id,
        owner,
      });
    }
    return Promise.resolve();
  }

  async release(queue: string, owner: string, ids: readonly string[]): Promise<void> {
    const now = this.clock.now();
    this.tx(() => {
      for (const id of ids) this.stmts.release.run(now, queue, id, owner);
    });
    return Promise.resolve();
  }

  async extendLease(queue: string, owner: string, ids: readonly string[], leaseMs: number): Promise<string[]> {
    const now = this.clock.now();
    const held: string[] = [];
    this.tx(() => {
      for (const id of ids) {
        const r = this.stmts.extend.get(now + leaseMs, queue, id, owner, now) as Row | undefined;
        if (r) held.push(id);
      }
    });
    return Promise.resolve(held);
  }

  async queueStats(queue?: string): Promise<QueueStats> {
    const now = this.clock.now();
    const row = (queue === undefined ? this.stmts.statsAll.get({ now }) : this.stmts.statsQueue.get({ now, queue })) as Row;
    return Promise.resolve({ ready: Number(row['ready']), scheduled: Number(row['scheduled']), leased: Number(row['leased']) });
  }

  async nextAvailableAt(queue: string): Promise<number | undefined> {
    const row = this.stmts.nextAvailable.get(queue) as Row | undefined;
    const at = row?.['at'];
    return Promise.resolve(typeof at === 'number' ? at : undefined);
  }

  // ---- workers (`ix status`) ----

  async heartbeat(worker: WorkerHeartbeat): Promise<void> {
    // a lost heartbeat only hides the worker from `ix status` for a while: no fsync of its own
    this.db
      .prepare(
        'INSERT INTO workers (id, host, pid, started_at, heartbeat_at, info) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, info = excluded.info',
      )
      .run(worker.id, worker.host, worker.pid, this.clock.now(), this.clock.now(), JSON.stringify(worker.info ?? {}));
    return Promise.resolve();
  }

  async removeWorker(id: string): Promise<void> {
    this.db.prepare('DELETE FROM workers WHERE id = ?').run(id);
    return Promise.resolve();
  }

  async listWorkers(): Promise<WorkerStatus[]> {
    const now = this.clock.now();
    this.db.prepare('DELETE FROM workers WHERE heartbeat_at < ?').run(now - WORKER_TIMEOUT_MS * 20);
    const rows = this.db
      .prepare(
        `SELECT w.id, w.host, w.pid, w.started_at, w.heartbeat_at, w.info,
                COALESCE((SELECT json_group_object(h.queue, h.n) FROM (
                   SELECT qi.queue, count(*) AS n FROM queue_items qi
                    WHERE qi.lease_owner IS NOT NULL AND qi.available_at > @now
                      AND (qi.lease_owner = w.id OR substr(qi.lease_owner, 1, length(w.id) + 1) = w.id || '/')
                    GROUP BY qi.queue) h), '{}') AS holds,
                COALESCE((SELECT json_group_array(l.name) FROM (
                   SELECT name FROM leases
                    WHERE expires_at > @now AND (owner = w.id OR substr(owner, 1, length(w.id) + 1) = w.id || '/')
                    ORDER BY name) l), '[]') AS leases
           FROM workers w
          WHERE w.heartbeat_at >= @live
          ORDER BY w.started_at, w.id`,
      )
      .all({ now, live: now - WORKER_TIMEOUT_MS }) as Row[];
    return Promise.resolve(
      rows.map((r) => ({
        id: r['id'] as string,
        host: r['host'] as string,
        pid: Number(r['pid']),
        startedAt: Number(r['started_at']),
        heartbeatAt: Number(r['heartbeat_at']),
        info: JSON.parse(r['info'] as string) as Record<string, unknown>,
        holds: JSON.parse(r['holds'] as string) as Record<string, number>,
        leases: JSON.parse(r['leases'] as string) as string[],
      })),
    );
  }

  async holders(): Promise<string[]> {
    const rows = this.db
      .prepare('SELECT DISTINCT lease_owner AS owner FROM queue_items WHERE lease_owner IS NOT NULL UNION SELECT DISTINCT owner FROM leases')
      .all() as Row[];
    return Promise.resolve(rows.map((r) => r['owner'] as string));
  }

  async releaseHoldings(id: string): Promise<number> {
    const now = this.clock.now();
    const under = `${id.replace(/[\\%_]/g, (c) => `\\${c}`)}/%`;
    let n = 0;
    this.tx(() => {
      n += this.db.prepare("UPDATE queue_items SET lease_owner = NULL, available_at = ? WHERE lease_owner = ? OR lease_owner LIKE ? ESCAPE '\\'").run(now, id, under).changes;
      n += this.db.prepare("DELETE FROM leases WHERE owner = ? OR owner LIKE ? ESCAPE '\\'").run(id, under).changes;
      this.db.prepare('DELETE FROM workers WHERE id = ?').run(id);
    });
    return Promise.resolve(n);
  }

  async getCheckpoint(key: string): Promise<string | undefined> {
    const row = this.stmts.getCheckpoint.get(key) as Row | undefined;
    return Promise.resolve(row ? (row['value'] as string) : undefined);
  }

  async setCheckpoint(key: string, value: string): Promise<void> {
    // A checkpoint lost to a power cut only means re-reading what it covered (at-least-once),
    // so its commit skips the fsync; the next durable commit (enqueue, dead letter) syncs the
    // WAL with it. A process crash loses nothing either way.
    this.stmts.setCheckpoint.run(key, value, this.clock.now());
    return Promise.resolve();
  }

  async deleteCheckpoint(key: string): Promise<void> {
    this.stmts.deleteCheckpoint.run(key);
    return Promise.resolve();
  }

  async listCheckpoints(prefix: string): Promise<Checkpoint[]> {
    const rows = this.stmts.listCheckpoints.all({ prefix }) as Row[];
    return Promise.resolve(rows.map((r) => ({ key: r['key'] as string, value: r['value'] as string, updatedAt: r['updated_at'] as number })));
  }

  async remember(scope: string, keys: readonly string[], ttlMs: number): Promise<boolean[]> {
    const now = this.clock.now();
    const out: boolean[] = [];
    this.tx(() => {
      for (const key of keys) out.push(this.stmts.remember.get(scope, key, now + ttlMs, now) !== undefined);
    });
    return Promise.resolve(out);
  }

  async seen(scope: string, keys: readonly string[]): Promise<boolean[]> {
    const now = this.clock.now();
    return Promise.resolve(keys.map((k) => this.stmts.seen.get(scope, k, now) !== undefined));
  }

  async purgeExpired(): Promise<number> {
    return Promise.resolve(this.stmts.purge.run(this.clock.now()).changes);
  }

  async acquireRate(key: string, limit: RateLimit): Promise<number> {
    const now = this.clock.now();
    const interval = limit.perMs / limit.count;
    const tolerance = (Math.max(1, limit.burst ?? 1) - 1) * interval;
    const wait = this.tx(() => {
      const row = this.stmts.getRate.get(key) as Row | undefined;
      const tat = Math.max(row ? (row['tat'] as number) : now, now);
      const allowAt = tat - tolerance;
      this.stmts.setRate.run(key, tat + interval);
      return Math.max(0, allowAt - now);
    });
    return Promise.resolve(Math.ceil(wait));
  }

  async acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = this.clock.now();
    const row = this.tx(() => this.stmts.takeLease.get({ name, owner, expires: now + ttlMs, now }) as Row | undefined);
    return Promise.resolve(row !== undefined);
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    this.stmts.releaseLease.run(name, owner);
    return Promise.resolve();
  }

  async deadLetter(entries: readonly DeadLetterInput[]): Promise<void> {
    const now = this.clock.now();
    await this.durableTx(() => {
      for (const e of entries) {
        this.stmts.insertDead.run(
          e.flow,
          e.message.id,
          JSON.stringify(e.message),
          e.failed === undefined ? null : JSON.stringify(e.failed),
          e.stage,
          e.reason,
          e.attempts,
          now,
          e.replayQueue ?? null,
        );
      }
    });
  }

  async listDeadLetters(filter: DeadLetterFilter = {}): Promise<DeadLetter[]> {
    const limit = filter.limit ?? 100;
    const after = filter.afterId ?? 0;
    const rows = (filter.flow === undefined ? this.stmts.listDead.all(after, limit) : this.stmts.listDeadFlow.all(filter.flow, after, limit)) as Row[];
    return Promise.resolve(rows.map(toDeadLetter));
  }

  async getDeadLetter(id: number): Promise<DeadLetter | undefined> {
    const row = this.stmts.getDead.get(id) as Row | undefined;
    return Promise.resolve(row ? toDeadLetter(row) : undefined);
  }

  async countDeadLetters(flow?: string): Promise<number> {
    const row = (flow === undefined ? this.stmts.countDead.get() : this.stmts.countDeadFlow.get(flow)) as Row;
    return Promise.resolve(Number(row['n']));
  }

  async replayDeadLetters(ids: readonly number[], queueFor: (entry: DeadLetter) => string): Promise<number[]> {
    const now = this.clock.now();
    const moved: number[] = [];
    await this.durableTx(() => {
      for (const id of ids) {
        const row = this.stmts.getDead.get(id) as Row | undefined;
        if (!row) continue;
        const entry = toDeadLetter(row);
        const queue = queueFor(entry);
        // A replay is a new delivery of the same message: a row left in the queue by an
        // earlier replay is reset rather than duplicated.
        const r = this.stmts.insert.run(queue, entry.message.id, JSON.stringify(entry.message), now, now);
        if (r.changes === 0) this.db.prepare('UPDATE queue_items SET available_at = ?, lease_owner = NULL, attempts = 0 WHERE queue = ? AND id = ?').run(now, queue, entry.message.id);
        this.stmts.deleteDead.run(id);
        moved.push(id);
      }
    });
    return moved;
  }

  async deleteDeadLetters(ids: readonly number[]): Promise<number> {
    let n = 0;
    await this.durableTx(() => {
      for (const id of ids) n += this.stmts.deleteDead.run(id).changes;
    });
    return n;
  }

  async recordDeliveryAttempts(entries: readonly DeliveryAttemptInput[], completed?: CompletedItems): Promise<void> {
    const now = this.clock.now();
    this.tx(() => {
      if (completed) for (const id of completed.ids) this.completeOne(completed.queue, completed.owner, id, now);
      for (const e of entries) {
        this.stmts.insertAttempt.run(
          e.flow,
          e.outbox,
          e.messageId,
          e.attempt,
          e.url,
          e.at,
          e.status ?? null,
          Math.round(e.latencyMs),
          e.outcome,
          e.error ?? null,
          e.responseExcerpt ?? null,
          e.nextAt ?? null,
        );
      }
    });
    return Promise.resolve();
  }

  async listDeliveryAttempts(filter: DeliveryAttemptFilter = {}): Promise<DeliveryAttempt[]> {
    const rows = this.stmts.listAttempts.all({
      after: filter.afterId ?? 0,
      flow: filter.flow ?? null,
      outbox: filter.outbox ?? null,
      messageId: filter.messageId ?? null,
      limit: filter.limit ?? 100,
    }) as Row[];
    return Promise.resolve(rows.map(toDeliveryAttempt));
  }

  async purgeDeliveryAttempts(before: number, outbox?: string): Promise<number> {
    const r = outbox === undefined ? this.stmts.purgeAttempts.run(before) : this.stmts.purgeOutboxAttempts.run(before, outbox);
    return Promise.resolve(r.changes);
  }

  /**
   * A transaction that is durable once the promise resolves, as with `synchronous = FULL`, but
   * whose fsync runs on the thread pool instead of blocking the event loop: the commit skips the
   * fsync, then one fdatasync of the WAL covers it and every commit made meanwhile (group
   * commit). A process crash loses nothing committed; a power loss nothing resolved.
   */
  private async durableTx<T>(fn: () => T): Promise<T> {
    const out = this.tx(fn);
    if (this.fullSync && this.walFile !== undefined) await this.syncWal();
    return out;
  }

  /** Resolves once everything written to the WAL before the call is on disk. */
  private syncWal(): Promise<void> {
    if (this.walSync === undefined) {
      this.walSync = this.fdatasyncWal().finally(() => {
        this.walSync = undefined;
      });
      return this.walSync;
    }
    // an fsync is running and may have started before our write: wait for the next one
    this.walSyncNext ??= this.walSync
      .catch(() => undefined)
      .then(() => {
        this.walSyncNext = undefined;
        return this.syncWal();
      });
    return this.walSyncNext;
  }

  private fdatasyncWal(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      try {
        this.walFd ??= openSync(this.walFile as string, 'r');
      } catch (err) {
        reject(new IxError('IX_STORE_UNAVAILABLE', { detail: (err as Error).message }, { cause: err }));
        return;
      }
      fdatasync(this.walFd, (err) => (err ? reject(new IxError('IX_STORE_UNAVAILABLE', { detail: err.message }, { cause: err })) : resolve()));
    });
  }

  /**
   * SQLite checkpoints the WAL inside a commit once it grew past 1000 pages, with two fsyncs on
   * the event loop. A store that writes a lot hands that to a worker thread instead.
   */
  private startCheckpointer(): void {
    if (this.walFile === undefined || this.checkpointer || !this.db.open) return;
    try {
      this.checkpointer = new WalCheckpointer(this.db.name, () => {
        if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
      });
      this.db.pragma('wal_autocheckpoint = 0');
    } catch {
      // keep SQLite's own checkpoints
    }
  }

  private tx<T>(fn: () => T): T {
    if (++this.writes === CHECKPOINTER_AFTER_WRITES) this.startCheckpointer();
    try {
      return this.immediate(fn) as T;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_IOERR' || code === 'SQLITE_FULL') {
        throw new IxError('IX_STORE_UNAVAILABLE', { detail: (err as Error).message }, { cause: err });
      }
      throw err;
    }
  }
}

function toQueueItem(row: Row): QueueItem {
  const item: QueueItem = {
    queue: row['queue'] as string,
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
    id: row['id'] as number,
    flow: row['flow'] as string,
    outbox: row['outbox'] as string,
    messageId: row['message_id'] as string,
    attempt: row['attempt'] as number,
    url: row['url'] as string,
    at: row['at'] as number,
    latencyMs: row['latency_ms'] as number,
    outcome: row['outcome'] as DeliveryAttempt['outcome'],
  };
  if (typeof row['status'] === 'number') a.status = row['status'];
  if (typeof row['error'] === 'string') a.error = row['error'];
  if (typeof row['response_excerpt'] === 'string') a.responseExcerpt = row['response_excerpt'];
  if (typeof row['next_at'] === 'number') a.nextAt = row['next_at'];
  return a;
}

/** Applies pending migrations in order, each in its own transaction; refuses a newer database. */
export function migrate(db: Database.Database, migrations: readonly Migration[]): number {
  db.exec('CREATE TABLE IF NOT EXISTS ix_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  const known = migrations.reduce((m, x) => Math.max(m, x.version), 0);
  const row = db.prepare('SELECT MAX(version) AS v FROM ix_migrations').get() as Row;
  const current = typeof row['v'] === 'number' ? row['v'] : 0;
  if (current > known) throw new IxError('IX_STORE_TOO_NEW', { found: current, known });
  let applied = 0;
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO ix_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
    }).immediate();
    applied++;
  }
  return applied;
}
