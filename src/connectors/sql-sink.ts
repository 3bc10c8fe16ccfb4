/**
 * The SQL sink every database connector runs: one transaction per write, multi-row
 * statements, per-row dead letters with the database's reason, bounded reconnects.
 */
import type { Sink, SinkContext, SinkWriteResult } from '../core/component.js';
import type { Clock } from '../core/clock.js';
import { IxError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Message } from '../core/message.js';
import { compileConflictExpression, type ConflictPredicate } from './sql-expression.js';
import {
  asKeyList,
  groupByColumns,
  keyOf,
  mapRow,
  quoteTable,
  RowMappingError,
  valueOf,
  versionGreater,
  type Row,
  type SqlConn,
  type SqlDriver,
  type SqlSinkCommon,
} from './sql-common.js';

export type ConflictPolicy = 'newest-wins' | 'source-wins' | 'target-wins' | { expression: string };

/** What a dialect needs to build one multi-row write. */
export interface WriteShape {
  readonly table: string;
  readonly columns: readonly string[];
  readonly rows: number;
  readonly mode: 'insert' | 'upsert';
  readonly key: readonly string[];
  /** The statement-level policy (`expression` is resolved to `source-wins` before the write). */
  readonly policy: 'newest-wins' | 'source-wins' | 'target-wins';
  readonly version?: string;
  readonly idColumn?: string;
}

/** Builds the INSERT / upsert statement for a dialect. */
export type WriteSqlBuilder = (shape: WriteShape) => string;

export interface SqlSinkStats {
  /** Rows sent to the database (inserted, updated, or kept by the conflict policy). */
  written: number;
  /** Rows dead-lettered (mapping or database rejected them). */
  failed: number;
  /** Messages skipped because their id was already in `idColumn`. */
  duplicates: number;
  /** Delete messages applied (`delete.when`). */
  deleted: number;
  /** Rows the `expression` policy decided against (the stored row was kept). */
  conflictsKeptTarget: number;
  /** Transactions retried after a lost connection or a deadlock. */
  retries: number;
}

interface Item {
  /** Indexes in the batch this row stands for (several after in-batch de-duplication). */
  readonly indexes: number[];
  readonly row: Row;
  /** Deletes the row with this key instead of writing it. */
  readonly del?: boolean;
}

export interface SqlSinkOptions {
  readonly config: SqlSinkCommon;
  readonly driver: SqlDriver;
  readonly build: WriteSqlBuilder;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Delays between reconnect attempts inside one write. @defaultValue [200, 1000, 3000] */
  readonly reconnectDelays?: readonly number[];
}

export class SqlSink implements Sink {
  readonly stats: SqlSinkStats = { written: 0, failed: 0, duplicates: 0, deleted: 0, conflictsKeptTarget: 0, retries: 0 };
  private readonly cfg: SqlSinkCommon;
  private readonly driver: SqlDriver;
  private readonly build: WriteSqlBuilder;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly key: string[];
  private readonly mode: 'insert' | 'upsert';
  private readonly policy: ConflictPolicy;
  private readonly predicate: ConflictPredicate | undefined;
  private readonly delays: readonly number[];
  private tableColumns: Set<string> | undefined;
  private closed = false;
  private readonly sqlCache = new Map<string, string>();
  private readonly deleteValues: Set<string>;

  constructor(options: SqlSinkOptions) {
    this.cfg = options.config;
    this.driver = options.driver;
    this.build = options.build;
    this.logger = options.logger;
    this.clock = options.clock;
    this.delays = options.reconnectDelays ?? [200, 1000, 3000];
    this.key = asKeyList(this.cfg.key);
    this.mode = this.cfg.mode ?? 'insert';
    this.policy = (this.cfg.onConflict ?? 'source-wins') as ConflictPolicy;
    if (this.mode === 'upsert' && this.key.length === 0) {
      throw new IxError('IX_SPEC_INVALID', { path: `${this.cfg.table}:`, detail: 'mode upsert needs `key` (the columns of a primary key or unique index)' });
    }
    if (this.mode === 'upsert' && this.policy === 'newest-wins' && !this.cfg.version) {
      throw new IxError('IX_SPEC_INVALID', { path: `${this.cfg.table}:`, detail: 'onConflict newest-wins needs `version` (the column to compare)' });
    }
    if (this.cfg.delete && this.mode !== 'upsert') {
      throw new IxError('IX_SPEC_INVALID', { path: `${this.cfg.table}:`, detail: '`delete` needs mode upsert and `key`' });
    }
    const eq = this.cfg.delete?.equals ?? 'delete';
    this.deleteValues = new Set(Array.isArray(eq) ? eq : [eq]);
    if (typeof this.policy === 'object') {
      try {
        this.predicate = compileConflictExpression(this.policy.expression);
      } catch (err) {
        throw new IxError('IX_SPEC_INVALID', { path: 'onConflict.expression', detail: (err as Error).message });
      }
    }
  }

  async write(batch: Message[], _ctx?: SinkContext): Promise<SinkWriteResult> {
    if (this.closed) throw new IxError('IX_DB_UNAVAILABLE', { db: this.driver.dialect.name, detail: 'the sink is closed' });
    const failed = new Map<number, unknown>();
    if (batch.length === 0) return { failed };
    const cols = await this.columns();
    let items: Item[] = [];
    batch.forEach((msg, i) => {
      try {
        const del = this.cfg.delete !== undefined && this.deleteValues.has(String(valueOf(msg, this.cfg.delete.when)));
        const row = mapRow(msg, this.cfg.columns, cols, this.cfg.idColumn);
        for (const k of this.key) {
          if (this.mode === 'upsert' && (row[k] === null || row[k] === undefined)) throw new RowMappingError(`key column "${k}" has no value`);
        }
        items.push(del ? { indexes: [i], row, del } : { indexes: [i], row });
      } catch (err) {
        if (!(err instanceof RowMappingError)) throw err;
        failed.set(i, new IxError('IX_DB_ROW_REJECTED', { table: this.cfg.table, detail: err.message }));
      }
    });
    if (this.mode === 'upsert') {
      // One row per key, in key order: concurrent batches lock rows in the same order (fewer deadlocks).
      items = [...this.dedupe(items).values()].sort((a, b) => this.compareKeys(a.row, b.row));
    }
    if (items.length > 0) await this.writeItems(items, failed);
    this.stats.failed += failed.size;
    return { failed };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.driver.close();
  }

  /** Key order: numbers as numbers, everything else as text (the order an index would append in). */
  private compareKeys(a: Row, b: Row): number {
    for (const k of this.key) {
      const x = a[k];
      const y = b[k];
      if (typeof x === 'number' && typeof y === 'number') {
        if (x !== y) return x < y ? -1 : 1;
        continue;
      }
      const sx = String(x);
      const sy = String(y);
      if (sx !== sy) return sx < sy ? -1 : 1;
    }
    return 0;
  }

  /** The table's columns, loaded once; a missing table stops the sink with a clear error. */
  private async columns(): Promise<Set<string>> {
    if (this.tableColumns) return this.tableColumns;
    const list = await this.withReconnect(() => this.driver.tableColumns(this.cfg.table));
    if (list.length === 0) {
      throw new IxError('IX_DB_STATEMENT', { db: this.driver.dialect.name, detail: `table "${this.cfg.table}" does not exist or has no columns` });
    }
    const set = new Set(list);
    const needed = [...this.key, ...(this.cfg.version ? [this.cfg.version] : []), ...(this.cfg.idColumn ? [this.cfg.idColumn] : []), ...Object.keys(this.cfg.columns ?? {})];
    const missing = needed.filter((c) => !set.has(c));
    if (missing.length > 0) {
      throw new IxError('IX_DB_STATEMENT', {
        db: this.driver.dialect.name,
        detail: `table "${this.cfg.table}" has no column ${missing.map((m) => `"${m}"`).join(', ')} (it has ${list.join(', ')})`,
      });
    }
    this.tableColumns = set;
    return set;
  }

  /** Several rows with one key in one batch: the policy picks one, so a statement never touches a row twice. */
  private dedupe(items: Item[]): Map<string, Item> {
    const byKey = new Map<string, Item>();
    for (const it of items) {
      const k = keyOf(it.row, this.key);
      const prev = byKey.get(k);
      if (!prev) {
        byKey.set(k, it);
        continue;
      }
      let keepNew: boolean;
      if (this.policy === 'target-wins') keepNew = false;
      else if (this.policy === 'newest-wins') {
        const v = it.row[this.cfg.version as string];
        // a delete without a version deletes whatever is stored (as deleteRows does), so it wins here too
        keepNew = (it.del === true && (v === null || v === undefined)) || !versionGreater(prev.row[this.cfg.version as string], v);
      }
      else keepNew = true;
      const merged = [...prev.indexes, ...it.indexes];
      const kept = keepNew ? it : prev;
      byKey.set(k, kept.del ? { indexes: merged, row: kept.row, del: true } : { indexes: merged, row: kept.row });
    }
    return byKey;
  }

  private async writeItems(items: Item[], failed: Map<number, unknown>): Promise<void> {
    await this.withReconnect(async () => {
      try {
        await this.driver.transaction((conn) => this.writeBulk(conn, items));
      } catch (err) {
        if (this.driver.classify(err) !== 'row') throw err;
        // One row is at fault: write row by row, each behind a savepoint, so the rest commits.
        const rowFailures = await this.driver.transaction((conn) => this.writeEach(conn, items));
        for (const [item, e] of rowFailures) {
          const error = new IxError('IX_DB_ROW_REJECTED', { table: this.cfg.table, detail: this.driver.reason(e) }, { cause: e });
          for (const i of item.indexes) failed.set(i, error);
        }
        this.stats.written -= rowFailures.size;
      }
    });
  }

  /** Runs `fn`, reconnecting on a lost connection or a deadlock a bounded number of times. */
  private async withReconnect<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof IxError) throw err;
        const cls = this.driver.classify(err);
        const reason = this.driver.reason(err);
        if (cls === 'fatal') throw new IxError('IX_DB_STATEMENT', { db: this.driver.dialect.name, detail: reason }, { cause: err });
        if (cls === 'row') throw new IxError('IX_DB_ROW_REJECTED', { table: this.cfg.table, detail: reason }, { cause: err });
        const delay = this.delays[attempt];
        if (delay === undefined) throw new IxError('IX_DB_UNAVAILABLE', { db: this.driver.dialect.name, detail: reason }, { cause: err });
        this.stats.retries++;
        this.logger.warn({ table: this.cfg.table, attempt: attempt + 1, delayMs: delay, reason }, 'database write failed; reconnecting');
        await this.clock.sleep(delay);
      }
    }
  }

  private async dropKnownIds(conn: SqlConn, items: Item[]): Promise<Item[]> {
    const idCol = this.cfg.idColumn;
    if (!idCol || this.mode !== 'insert') return items;
    const d = this.driver.dialect;
    const seen = new Set<string>();
    const step = Math.max(1, d.maxParams - 1);
    for (let off = 0; off < items.length; off += step) {
      const chunk = items.slice(off, off + step);
      const ph = chunk.map((_, i) => d.param(i + 1)).join(', ');
      const res = await conn.query(`SELECT ${d.quote(idCol)} AS id FROM ${quoteTable(d, this.cfg.table)} WHERE ${d.quote(idCol)} IN (${ph})`, chunk.map((it) => it.row[idCol]));
      for (const r of res.rows) seen.add(String(r['id']));
    }
    if (seen.size === 0) return items;
    this.stats.duplicates += seen.size;
    return items.filter((it) => !seen.has(String(it.row[idCol])));
  }

  /** Under the expression policy: reads the stored rows and keeps only the incoming rows that win. */
  private async resolveExpression(conn: SqlConn, items: Item[]): Promise<Item[]> {
    const pred = this.predicate;
    if (!pred || this.mode !== 'upsert') return items;
    const d = this.driver.dialect;
    const stored = new Map<string, Row>();
    const per = this.key.length;
    const step = Math.max(1, Math.floor(d.maxParams / per));
    const lock = d.name === 'sqlite' ? '' : ' FOR UPDATE';
    for (let off = 0; off < items.length; off += step) {
      const chunk = items.slice(off, off + step);
      const params: unknown[] = [];
      let n = 0;
      const tuples = chunk.map((it) => {
        const ph = this.key.map((k) => {
          params.push(d.value(it.row[k]));
          return d.param(++n);
        });
        return per === 1 ? ph[0] : `(${ph.join(', ')})`;
      });
      const lhs = per === 1 ? d.quote(this.key[0] as string) : `(${this.key.map((k) => d.quote(k)).join(', ')})`;
      const res = await conn.query(`SELECT * FROM ${quoteTable(d, this.cfg.table)} WHERE ${lhs} IN (${tuples.join(', ')})${lock}`, params);
      for (const r of res.rows) stored.set(keyOf(r, this.key), r);
    }
    return items.filter((it) => {
      const target = stored.get(keyOf(it.row, this.key));
      if (!target) return true;
      if (pred(it.row, target)) return true;
      this.stats.conflictsKeptTarget++;
      this.logger.debug({ table: this.cfg.table, key: keyOf(it.row, this.key) }, 'conflict: stored row kept by the expression policy');
      return false;
    });
  }

  private statementPolicy(): WriteShape['policy'] {
    return typeof this.policy === 'object' ? 'source-wins' : this.policy;
  }

  /** Deletes by key; under newest-wins only a stored row whose version is not greater. */
  private async deleteRows(conn: SqlConn, dels: Item[]): Promise<void> {
    if (dels.length === 0) return;
    const d = this.driver.dialect;
    const table = quoteTable(d, this.cfg.table);
    const version = this.policy === 'newest-wins' ? this.cfg.version : undefined;
    const perRow = this.key.length + (version ? 1 : 0);
    const step = Math.max(1, Math.floor(Math.min(d.maxParams, 2000) / perRow));
    for (let off = 0; off < dels.length; off += step) {
      const chunk = dels.slice(off, off + step);
      const params: unknown[] = [];
      let n = 0;
      const conds = chunk.map((it) => {
        const parts = this.key.map((k) => {
          params.push(d.value(it.row[k]));
          return `${d.quote(k)} = ${d.param(++n)}`;
        });
        if (version) {
          const v = it.row[version];
          if (v !== null && v !== undefined) {
            params.push(d.value(v));
            parts.push(`(${d.quote(version)} IS NULL OR ${d.quote(version)} <= ${d.param(++n)})`);
          }
        }
        return `(${parts.join(' AND ')})`;
      });
      await conn.query(`DELETE FROM ${table} WHERE ${conds.join(' OR ')}`, params);
    }
    this.stats.deleted += dels.length;
  }

  private async writeBulk(conn: SqlConn, all: Item[]): Promise<void> {
    await this.deleteRows(
      conn,
      all.filter((it) => it.del),
    );
    let items = await this.dropKnownIds(
      conn,
      all.filter((it) => !it.del),
    );
    items = await this.resolveExpression(conn, items);
    const d = this.driver.dialect;
    for (const g of groupByColumns(items)) {
      const perStatement = Math.max(1, Math.floor(d.maxParams / g.columns.length));
      for (let off = 0; off < g.items.length; off += perStatement) {
        const chunk = g.items.slice(off, off + perStatement);
        const sql = this.statement(g.columns, chunk.length);
        const params: unknown[] = [];
        for (const it of chunk) for (const c of g.columns) params.push(d.value(it.row[c]));
        await conn.query(sql, params);
      }
    }
    this.stats.written += items.length;
  }

  private async writeEach(conn: SqlConn, all: Item[]): Promise<Map<Item, unknown>> {
    const failures = new Map<Item, unknown>();
    for (const it of all.filter((x) => x.del)) {
      await conn.query('SAVEPOINT ix_row');
      try {
        await this.deleteRows(conn, [it]);
        await conn.query('RELEASE SAVEPOINT ix_row');
      } catch (err) {
        if (this.driver.classify(err) !== 'row') throw err;
        await conn.query('ROLLBACK TO SAVEPOINT ix_row');
        failures.set(it, err);
      }
    }
    let items = await this.dropKnownIds(
      conn,
      all.filter((x) => !x.del),
    );
    items = await this.resolveExpression(conn, items);
    const d = this.driver.dialect;
    for (const it of items) {
      const columns = Object.keys(it.row);
      await conn.query('SAVEPOINT ix_row');
      try {
        await conn.query(
          this.statement(columns, 1),
          columns.map((c) => d.value(it.row[c])),
        );
        await conn.query('RELEASE SAVEPOINT ix_row');
      } catch (err) {
        if (this.driver.classify(err) !== 'row') throw err;
        await conn.query('ROLLBACK TO SAVEPOINT ix_row');
        if (await this.alreadyWritten(conn, it)) {
          this.stats.duplicates++;
          continue;
        }
        failures.set(it, err);
      }
    }
    this.stats.written += items.length;
    return failures;
  }

  /** In insert mode with `idColumn`: whether a concurrent writer stored this message meanwhile. */
  private async alreadyWritten(conn: SqlConn, it: Item): Promise<boolean> {
    const idCol = this.cfg.idColumn;
    if (!idCol || this.mode !== 'insert') return false;
    const d = this.driver.dialect;
    const res = await conn.query(`SELECT 1 AS one FROM ${quoteTable(d, this.cfg.table)} WHERE ${d.quote(idCol)} = ${d.param(1)}`, [it.row[idCol]]);
    return res.rows.length > 0;
  }

  /** The write statement for these columns and row count, built once. */
  private statement(columns: string[], rows: number): string {
    const k = `${rows}\0${columns.join('\0')}`;
    let sql = this.sqlCache.get(k);
    if (sql === undefined) {
      sql = this.build(this.shape(columns, rows));
      if (this.sqlCache.size > 256) this.sqlCache.clear();
      this.sqlCache.set(k, sql);
    }
    return sql;
  }

  private shape(columns: string[], rows: number): WriteShape {
    const s: { -readonly [K in keyof WriteShape]: WriteShape[K] } = {
      table: this.cfg.table,
      columns,
      rows,
      mode: this.mode,
      key: this.key,
      policy: this.statementPolicy(),
    };
    if (this.cfg.version) s.version = this.cfg.version;
    if (this.cfg.idColumn) s.idColumn = this.cfg.idColumn;
    return s;
  }
}
