/**
 * One sync stream: reads batches, turns records into rows (keys and cursors checked, bad
 * records dead-lettered), writes each batch to the target in one transaction, and only then
 * commits the stream's checkpoint. A crashed run resumes at its last checkpoint.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import type { ComponentStore, Resources } from '../core/component.js';
import { errorMessage, IxError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { StoredMessage } from '../core/message.js';
import { getPath } from '../connectors/sql-common.js';
import type { SyncSpec, SyncStreamSpec } from '../spec/types.js';
import { databaseIdentity, openTarget, type TargetPool } from './connect.js';
import { cursorOrder, lookBack, storable } from './cursor.js';
import type { SyncMetrics } from './metrics.js';
import { openReader, type ReadBatch } from './readers.js';
import { SyncTarget, type ApplyResult, type TargetItem, type TargetOptions } from './target.js';

export interface StreamStats {
  read: number;
  written: number;
  deleted: number;
  unchanged: number;
  conflicted: number;
  failed: number;
  vanished: number;
  backwards: number;
}

export const emptyStats = (): StreamStats => ({ read: 0, written: 0, deleted: 0, unchanged: 0, conflicted: 0, failed: 0, vanished: 0, backwards: 0 });

type RunKind = 'full' | 'incremental' | 'backfill';

interface RunState {
  readonly id: string;
  readonly kind: RunKind;
  readonly since?: unknown;
  readonly to?: unknown;
  /** The committed cursor when the run began (backwards detection). */
  readonly base?: unknown;
  position?: unknown;
  max?: unknown;
  /** Uses a staging table of the keys seen (full upsert runs that delete or mark vanished rows). */
  staged: boolean;
  /** Everything was read; the vanished sweep is under way. */
  sweeping?: boolean;
  stats: StreamStats;
}

export interface StreamState {
  /** The committed cursor: a value (http) or a (cursor, key) position (tables). */
  cursor?: unknown;
  run?: RunState;
  lastRunAt?: number;
  /** backfill-realtime: the copy is complete. */
  backfilled?: boolean;
}

export interface StreamEnv {
  readonly job: SyncSpec;
  readonly store: ComponentStore;
  readonly resources: Resources;
  readonly baseDir: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: SyncMetrics;
  /** Shared target connections of a job run. */
  readonly targets?: TargetPool;
  /**
   * Runs `fn` alone among the writes of this stream (the copy and the events of a
   * backfill-realtime stream take turns, so a delete event never lands inside a copy batch).
   */
  readonly serial?: <T>(stream: string, fn: () => Promise<T>) => Promise<T>;
  readonly onProgress?: (stream: string, p: { read: number; written: number; total?: number; done: boolean }) => void;
}

export interface StreamRunOptions {
  readonly fullRefresh?: boolean;
  readonly from?: unknown;
  readonly to?: unknown;
  readonly signal: AbortSignal;
}

export interface StreamResult {
  readonly stream: string;
  readonly status: 'ok' | 'failed' | 'stopped';
  readonly stats: StreamStats;
  readonly checkpoint: unknown;
  readonly error?: string;
}

/** `seen` for tags that may be missing (a record without a version): missing ones are unseen. */
export async function seenTags(store: ComponentStore, scope: string, tags: readonly (string | undefined)[]): Promise<boolean[]> {
  const present = tags.filter((t): t is string => t !== undefined);
  if (present.length === 0) return tags.map(() => false);
  const flags = await store.seen(scope, present);
  let i = 0;
  return tags.map((t) => (t === undefined ? false : Boolean(flags[i++])));
}

/** How long the sync remembers which versions it read and wrote (conflict detection, echoes). */
const VERSIONS_TTL_MS = 30 * 24 * 3600_000;


export class StreamRunner {
  private target: SyncTarget | undefined;
  private targetIdentity = '';
  private sourceIdentity: string | undefined;
  private readonly log: Logger;
  private readonly stateKey: string;
  private applying: Promise<unknown> = Promise.resolve();

  constructor(
    readonly spec: SyncStreamSpec,
    private readonly env: StreamEnv,
  ) {
    this.log = env.logger.child({ sync: env.job.name, stream: spec.name });
    this.stateKey = `sync/${env.job.name}/${spec.name}`;
    const from = spec.from;
    if (from && from.kind !== 'http') this.sourceIdentity = `${databaseIdentity(from.kind, from.config as never, env.baseDir)}/${(from.config as { table: string }).table}`;
  }

  get name(): string {
    return this.spec.name;
  }

  async state(): Promise<StreamState> {
    const raw = await this.env.store.getCheckpoint(this.stateKey);
    return raw ? (JSON.parse(raw) as StreamState) : {};
  }

  private async save(state: StreamState): Promise<void> {
    await this.env.store.setCheckpoint(this.stateKey, JSON.stringify(state));
    this.env.metrics?.checkpointAt.set(`${this.env.job.name}\0${this.spec.name}`, Date.now());
  }

  /** Opens the target and checks its table; a mismatch stops the stream before any write. */
  async open(): Promise<SyncTarget> {
    if (this.target) return this.target;
    const t = (this.spec.target ?? this.env.job.target) as NonNullable<SyncStreamSpec['target']>;
    const pool = this.env.targets;
    const conn = pool ? await pool.get(t) : await openTarget(t, this.env.baseDir, this.log);
    const s = this.spec;
    const options: TargetOptions = {
      stream: `${this.env.job.name}.${s.name}`,
      table: s.table,
      key: s.key,
      write: s.write,
      // backfill-realtime: the copy and the events meet by version
      conflict: s.mode === 'backfill-realtime' && s.conflict === 'source-wins' ? 'newest-wins' : s.conflict,
      vanished: s.vanished,
      strict: s.strict,
      logger: this.log,
      ...(s.version ? { version: s.version } : {}),
      ...(s.columns ? { columns: s.columns } : {}),
    };
    const target = new SyncTarget(conn, options, !pool);
    try {
      await target.prepare();
    } catch (err) {
      await target.close().catch(() => undefined);
      throw err;
    }
    this.targetIdentity = `${conn.identity}/${s.table}`;
    this.target = target;
    return target;
  }

  async close(): Promise<void> {
    await this.target?.close().catch(() => undefined);
    this.target = undefined;
  }

  /** One run of a pull stream: a full copy, the changes since the cursor, or a backfill range. */
  async run(o: StreamRunOptions): Promise<StreamResult> {
    const s = this.spec;
    let state = await this.state();
    const wanted: RunKind =
      o.from !== undefined || o.to !== undefined ? 'backfill' : o.fullRefresh || s.mode === 'full' || (s.mode === 'backfill-realtime' && !state.backfilled) ? 'full' : 'incremental';
    let run = state.run;
    const resumed = run !== undefined && run.kind === wanted && (wanted !== 'backfill' || (run.since === o.from && run.to === o.to));
    try {
      const target = await this.open();
      if (!resumed || !run) {
        const since =
          wanted === 'backfill' ? o.from : wanted === 'incremental' ? this.since(state.cursor) : undefined;
        run = { id: randomUUID(), kind: wanted, staged: false, stats: emptyStats(), ...(since !== undefined ? { since } : {}), ...(o.to !== undefined ? { to: o.to } : {}), ...(state.cursor !== undefined ? { base: state.cursor } : {}) };
        run.staged = wanted === 'full' && s.write === 'upsert' && s.vanished !== 'keep';
        if (run.staged) await target.openStaging(true);
        state = { ...state, run };
        await this.save(state);
      } else {
        this.log.info({ run: run.id, position: run.position, read: run.stats.read }, 'resuming an interrupted sync run from its checkpoint');
        // A run interrupted in its sweep has read everything; its staging table may be gone already.
        if (run.staged && !run.sweeping) await target.openStaging(false);
      }
      if (!run.sweeping) await this.readAll(run, state, o.signal);
      if (o.signal.aborted) return { stream: s.name, status: 'stopped', stats: run.stats, checkpoint: run.position };
      if (run.staged) {
        const r = run;
        // In turn with event batches: an event batch either staged its keys before the sweep or runs after it.
        r.stats.vanished += await this.serially(async () => {
          r.sweeping = true;
          await this.save({ ...state, run: r });
          return target.sweep();
        });
        this.env.metrics?.records.inc({ job: this.env.job.name, stream: s.name, outcome: 'vanished' }, run.stats.vanished);
      }
      const cursor = this.finalCursor(run, state);
      const next: StreamState = { ...state, lastRunAt: this.env.clock.now() };
      delete next.run;
      if (run.kind !== 'backfill' && cursor !== undefined) next.cursor = cursor;
      if (run.kind === 'full' && s.mode === 'backfill-realtime') next.backfilled = true;
      await this.save(next);
      this.setLag(next.cursor);
      this.log.info({ run: run.id, kind: run.kind, ...run.stats, cursor: next.cursor }, 'sync stream finished');
      return { stream: s.name, status: 'ok', stats: run.stats, checkpoint: next.cursor };
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'sync stream stopped');
      return { stream: s.name, status: 'failed', stats: run?.stats ?? emptyStats(), checkpoint: state.cursor, error: errorMessage(err) };
    }
  }

  /** Where an incremental run starts: the committed cursor moved back by the look-back window. */
  private since(cursor: unknown): unknown {
    if (cursor === undefined) return undefined;
    const s = this.spec;
    if (s.from?.kind === 'http') return lookBack(cursor, s.lookback);
    const pos = cursor as { c: unknown; k: unknown };
    return s.lookback !== undefined ? { c: lookBack(pos.c, s.lookback), k: null } : pos;
  }

  private finalCursor(run: RunState, state: StreamState): unknown {
    const s = this.spec;
    if (!s.cursor) return state.cursor;
    const base = state.cursor;
    const isTable = s.from?.kind !== 'http';
    let next: unknown;
    if (isTable) next = run.kind === 'incremental' ? (run.position ?? base) : run.max !== undefined ? { c: storable(run.max), k: null } : base;
    else next = run.max !== undefined ? storable(run.max) : base;
    const order = (v: unknown): number | undefined => cursorOrder(isTable ? (v as { c: unknown } | undefined)?.c : v);
    const a = order(base);
    const b = order(next);
    if (a !== undefined && b !== undefined && b < a) {
      this.log.warn({ previous: base, now: next }, 'the cursor moved backwards: the next run reads from the lower value, so nothing is lost');
    }
    return next;
  }

  private setLag(cursor: unknown): void {
    const c = (cursor as { c?: unknown } | undefined)?.c ?? cursor;
    if (typeof c !== 'string' || !Number.isNaN(Number(c))) return;
    const t = cursorOrder(c);
    if (t !== undefined) this.env.metrics?.lag.set({ job: this.env.job.name, stream: this.spec.name }, Math.max(0, (this.env.clock.now() - t) / 1000));
  }

  private async readAll(run: RunState, state: StreamState, signal: AbortSignal): Promise<void> {
    const s = this.spec;
    const reader = openReader(s.from as NonNullable<SyncStreamSpec['from']>, { key: s.key, resources: this.env.resources, baseDir: this.env.baseDir, logger: this.log, ...(s.cursor ? { cursor: s.cursor } : {}) });
    const isTable = s.from?.kind !== 'http';
    const since = run.since as { c: unknown; k: unknown } | unknown;
    const it = reader.read({
      byCursor: run.kind !== 'full',
      batchSize: s.batchSize,
      signal,
      ...(run.position !== undefined ? { resume: run.position } : {}),
      ...(isTable && run.kind === 'incremental' && since ? { after: since as { c: unknown; k: unknown } } : {}),
      ...(!isTable || run.kind === 'backfill' ? (since !== undefined ? { since } : {}) : {}),
      ...(run.to !== undefined ? { to: run.to } : {}),
    });
    // Reads one batch ahead while the previous one is written.
    let pending = it.next();
    pending.catch(() => undefined);
    let total: number | undefined;
    for (;;) {
      const r = await pending;
      if (r.done) break;
      const batch: ReadBatch = r.value;
      if (!batch.done) {
        pending = it.next();
        pending.catch(() => undefined);
      }
      if (batch.total !== undefined) total = batch.total;
      await this.applyBatch(run, batch, state);
      this.env.onProgress?.(s.name, { read: run.stats.read, written: run.stats.written, ...(total !== undefined ? { total } : {}), done: false });
      if (batch.done || signal.aborted) break;
    }
    await it.return(undefined).catch(() => undefined);
    this.env.onProgress?.(s.name, { read: run.stats.read, written: run.stats.written, ...(total !== undefined ? { total } : {}), done: true });
  }

  /** Validates, writes and checkpoints one batch. */
  private async applyBatch(run: RunState, batch: ReadBatch, state: StreamState): Promise<void> {
    const s = this.spec;
    const { items, bad } = this.toItems(batch.records, run);
    run.stats.read += batch.records.length;
    if (s.cursor) {
      let max = run.max;
      let top = cursorOrder(max) ?? -Infinity;
      for (const rec of batch.records) {
        const c = getPath(rec, s.cursor);
        const o = cursorOrder(c);
        if (o !== undefined && o > top) {
          top = o;
          max = c;
        }
      }
      run.max = max;
    }
    const res = await this.serially(async () => {
      // A copy that meets events: keys deleted by an event since the copy began are not copied back.
      // Staged all the same: the key was at the source when the copy read it (no vanished sweep).
      const copy = this.deletedScope && run.kind === 'full' ? await this.dropDeleted(items) : items;
      return this.write(copy, run.staged ? items : []);
    });
    await this.deadLetter(batch.records, bad, res);
    this.count(run.stats, batch.records.length, res, bad.size);
    run.position = batch.position;
    run.max = storable(run.max);
    await this.save({ ...state, run });
  }

  private count(stats: StreamStats, read: number, res: ApplyResult, bad: number): void {
    stats.written += res.written;
    stats.deleted += res.deleted;
    stats.unchanged += res.unchanged;
    stats.conflicted += res.conflicts;
    stats.failed += res.failed.size + bad;
    const m = this.env.metrics;
    if (!m) return;
    const l = { job: this.env.job.name, stream: this.spec.name };
    m.records.inc({ ...l, outcome: 'read' }, read);
    m.records.inc({ ...l, outcome: 'written' }, res.written);
    if (res.deleted) m.records.inc({ ...l, outcome: 'deleted' }, res.deleted);
    if (res.unchanged) m.records.inc({ ...l, outcome: 'unchanged' }, res.unchanged);
    if (res.failed.size + bad) m.records.inc({ ...l, outcome: 'failed' }, res.failed.size + bad);
    if (res.conflicts) m.conflicts.inc(l, res.conflicts);
  }

  /** Records → target items; a record without its key or with an uncomparable cursor is set aside with the reason. */
  toItems(records: readonly Record<string, unknown>[], run?: RunState): { items: TargetItem[]; bad: Map<number, string> } {
    const s = this.spec;
    const target = this.target as SyncTarget;
    const items: TargetItem[] = [];
    const bad = new Map<number, string>();
    const unknown = new Set<string>();
    const base = run?.base === undefined ? undefined : cursorOrder((run.base as { c?: unknown }).c ?? run.base);
    records.forEach((rec, index) => {
      for (const f of target.unknownFields(rec, s.deleted?.field)) unknown.add(f);
      const row = target.toRow(rec);
      const missing = s.key.filter((k) => row[k] === null || row[k] === undefined);
      if (missing.length > 0) {
        bad.set(index, `record has no key: ${missing.map((m) => `"${m}"`).join(', ')} missing`);
        return;
      }
      if (s.cursor && run && run.kind !== 'full') {
        const c = getPath(rec, s.cursor);
        const order = cursorOrder(c);
        if (order === undefined) {
          bad.set(index, `cursor "${s.cursor}" is not comparable: ${JSON.stringify(c) ?? 'undefined'}`);
          return;
        }
        if (run.to !== undefined && order > (cursorOrder(run.to) ?? Infinity)) return; // past the backfill range
        if (base !== undefined && order < base && run.kind === 'incremental' && s.lookback === undefined) run.stats.backwards++;
      }
      const del = s.deleted !== undefined && getPath(rec, s.deleted.field) === s.deleted.equals;
      items.push({ index, row, del, key: target.keyOf(row) });
    });
    if (unknown.size > 0) {
      throw new IxError('IX_SYNC_SCHEMA', {
        stream: `${this.env.job.name}.${s.name}`,
        table: s.table,
        detail: `records have fields the table lacks: ${[...unknown].map((f) => `"${f}"`).join(', ')} (add the columns, map them with \`columns\`, or set strict: false)`,
      });
    }
    if (run && run.stats.backwards > 0 && items.length > 0) {
      this.log.warn({ records: run.stats.backwards, committed: run.base }, 'records older than the committed cursor arrived (the cursor moved backwards); they are written, nothing is lost');
    }
    return { items, bad };
  }

  /**
   * Writes items under the policy. With conflict tracking the sync remembers, per table, the
   * versions it wrote there and the versions it read from there. A stored row whose version is
   * among them did not change on its own (no conflict); a record whose version the sync itself
   * wrote into its source is the echo of a two-way sync and is not applied back.
   */
  private async write(items: TargetItem[], stage: readonly TargetItem[]): Promise<ApplyResult> {
    const target = this.target as SyncTarget;
    const store = this.env.store;
    let todo = items;
    let echoes = 0;
    const src = this.sourceIdentity;
    const tags = target.readsTarget && src ? items.map((it) => target.tag(it.row)) : [];
    if (src && tags.length > 0) {
      const written = await seenTags(store, `sync-written:${src}`, tags);
      todo = items.filter((_, i) => !written[i]);
      echoes = items.length - todo.length;
    }
    const dst = this.targetIdentity;
    const known = target.readsTarget
      ? async (t: readonly (string | undefined)[]): Promise<boolean[]> => {
          const [w, r] = await Promise.all([seenTags(store, `sync-written:${dst}`, t), seenTags(store, `sync-read:${dst}`, t)]);
          return t.map((_, i) => Boolean(w[i] || r[i]));
        }
      : undefined;
    const res = await this.withRetry(() => target.apply(todo, known, stage));
    res.unchanged += echoes;
    if (target.readsTarget) {
      if (res.applied.length > 0) await store.remember(`sync-written:${dst}`, res.applied, VERSIONS_TTL_MS);
      const read = tags.filter((t): t is string => t !== undefined);
      if (src && read.length > 0) await store.remember(`sync-read:${src}`, read, VERSIONS_TTL_MS);
    }
    return res;
  }

  private async withRetry<T>(fn: () => Promise<T>): Promise<T> {
    const delays = [200, 1000, 3000, 5000];
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof IxError) throw err;
        const conn = (this.target as unknown as { conn: { driver: { classify(e: unknown): string; reason(e: unknown): string } } }).conn.driver;
        const delay = delays[attempt];
        if (conn.classify(err) !== 'transient' || delay === undefined) throw new IxError('IX_DB_STATEMENT', { db: this.spec.table, detail: conn.reason(err) }, { cause: err });
        this.log.warn({ attempt: attempt + 1, delayMs: delay, reason: conn.reason(err) }, 'target write failed; retrying');
        await this.env.clock.sleep(delay);
      }
    }
  }

  private async deadLetter(records: readonly Record<string, unknown>[], bad: Map<number, string>, res: ApplyResult): Promise<void> {
    const all = new Map(bad);
    for (const [i, reason] of res.failed) all.set(i, `the target rejected the row: ${reason}`);
    if (all.size === 0) return;
    const flow = `sync:${this.env.job.name}.${this.spec.name}`;
    const entries = [...all].map(([i, reason]) => {
      const message: StoredMessage = { id: `${flow}:${randomUUID()}`, payload: records[i], headers: {}, meta: { sync: this.env.job.name, stream: this.spec.name } };
      return { flow, message, stage: 'sync', reason, attempts: 1 };
    });
    await this.env.store.deadLetter(entries);
    this.log.warn({ records: entries.length, first: entries[0]?.reason }, 'sync records dead-lettered');
  }

  /**
   * Applies a batch of event records (realtime): tombstones from `deleted` or change events
   * (`{ op, new, old }`); resolves once the target committed them.
   */
  async applyEvents(payloads: readonly unknown[]): Promise<StreamResult['stats']> {
    const stats = emptyStats();
    const run = async (): Promise<void> => {
      const target = await this.open();
      const records: Record<string, unknown>[] = [];
      const deletes = new Set<number>();
      payloads.forEach((p, i) => {
        const ev = p as { op?: unknown; new?: unknown; old?: unknown };
        if (ev && typeof ev === 'object' && typeof ev.op === 'string' && ('new' in ev || 'old' in ev)) {
          const isDel = ev.op === 'delete';
          records.push(((isDel ? ev.old : ev.new) ?? {}) as Record<string, unknown>);
          if (isDel) deletes.add(i);
        } else records.push((p ?? {}) as Record<string, unknown>);
      });
      const { items, bad } = this.toItems(records);
      const all = items.map((it) => (deletes.has(it.index) ? { ...it, del: true } : it));
      // backfill-realtime: keys an event writes while the copy runs are staged like the copy's
      // own, so the copy's vanished sweep never deletes a row an event just put there.
      const copy = this.deletedScope ? (await this.state()).run : undefined;
      const res = await this.write(all, copy?.kind === 'full' && copy.staged && !copy.sweeping ? all : []);
      const deleted = all.filter((it) => it.del).map((it) => it.key);
      if (this.deletedScope && deleted.length > 0) await this.env.store.remember(this.deletedScope, deleted, 7 * 24 * 3600_000);
      await this.deadLetter(records, bad, res);
      this.count(stats, records.length, res, bad.size);
      stats.read += records.length;
      void target;
    };
    await this.serially(run);
    return stats;
  }

  /** One write at a time per stream: the target sees events in the order they were acknowledged. */
  private serially<T>(fn: () => Promise<T>): Promise<T> {
    if (this.env.serial) return this.env.serial(this.spec.name, fn);
    const p = this.applying.then(fn, fn);
    this.applying = p.catch(() => undefined);
    return p;
  }

  /** backfill-realtime: where keys deleted by events are remembered while a copy may run. */
  private get deletedScope(): string | undefined {
    return this.spec.mode === 'backfill-realtime' ? `sync-deleted:${this.env.job.name}/${this.spec.name}` : undefined;
  }

  private async dropDeleted(items: TargetItem[]): Promise<TargetItem[]> {
    if (items.length === 0) return items;
    const gone = await this.env.store.seen(this.deletedScope as string, items.map((it) => it.key));
    return items.filter((_, i) => !gone[i]);
  }
}
