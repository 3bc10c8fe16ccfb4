/**
 * Writes a sync stream's records into its target table: one transaction per batch, the
 * conflict policy decided per row against the stored row, tombstones, the keys of a full run
 * kept in a staging table so vanished rows can be deleted or marked at its end.
 */
import { createHash } from 'node:crypto';
import { IxError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { compileConflictExpression, type ConflictPredicate } from '../connectors/sql-expression.js';
import { getPath, groupByColumns, keyOf, quoteTable, versionGreater as greaterAsStored, type Row, type SqlConn } from '../connectors/sql-common.js';
import type { SyncConflictPolicy } from '../spec/types.js';
import type { TargetConnection } from './connect.js';
import { cursorOrder } from './cursor.js';

export interface TargetOptions {
  readonly stream: string;
  readonly table: string;
  readonly key: readonly string[];
  readonly write: 'upsert' | 'append';
  readonly conflict: SyncConflictPolicy;
  readonly version?: string;
  readonly columns?: Readonly<Record<string, string>>;
  readonly vanished: 'delete' | 'keep' | { readonly mark: string };
  readonly strict: boolean;
  readonly logger: Logger;
}

/** One record on its way to the target. */
export interface TargetItem {
  /** Index in the batch (for dead letters). */
  readonly index: number;
  readonly row: Row;
  readonly del: boolean;
  readonly key: string;
}

export interface ApplyResult {
  written: number;
  deleted: number;
  /** The stored row already had this version: nothing to do (a redelivery or an echo). */
  unchanged: number;
  conflicts: number;
  /** Rows the policy decided for the target: the stored row was kept. */
  keptTarget: number;
  /** Batch index → the database's reason. */
  readonly failed: Map<number, string>;
  /** `key|version` of the rows written (what the sync itself put there). */
  readonly applied: string[];
}

/** Asks whether the sync itself wrote these `key|version` tags (conflict detection). */
export type KnownVersions = (tags: readonly (string | undefined)[]) => Promise<boolean[]>;


/** A version as text that survives a round trip through the database (Dates to the millisecond). */
export function versionTag(v: unknown): string {
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'string') {
    const t = Date.parse(v.replace(/^(\d{4}-\d\d-\d\d) (\d)/, '$1T$2').replace(/([+-]\d\d)$/, '$1:00'));
    if (Number.isNaN(Number(v)) && !Number.isNaN(t)) return new Date(t).toISOString();
  }
  return String(v);
}

/** Whether version `a` is greater than `b`, across forms (a Date from the database, ISO text from an API). */
function versionGreater(a: unknown, b: unknown): boolean {
  const x = cursorOrder(a);
  const y = cursorOrder(b);
  if (x !== undefined && y !== undefined) return x > y;
  return greaterAsStored(a, b);
}

/**
 * The items of a batch without those a later delete of the same key overrides, keeping
 * batch order: `[upsert k, delete k]` is a delete, `[delete k, upsert k]` a delete and then
 * the upsert.
 */
export function supersededByDeletes(items: readonly TargetItem[]): readonly TargetItem[] {
  const lastDelete = new Map<string, number>();
  items.forEach((it, i) => {
    if (it.del) lastDelete.set(it.key, i);
  });
  if (lastDelete.size === 0) return items;
  return items.filter((it, i) => {
    const d = lastDelete.get(it.key);
    return d === undefined || i >= d;
  });
}

export class SyncTarget {
  private cols: Set<string> | undefined;
  private readonly predicate: ConflictPredicate | undefined;
  readonly staging: string;
  private readonly sqlCache = new Map<string, string>();

  constructor(
    private readonly conn: TargetConnection,
    private readonly o: TargetOptions,
    /** Whether closing this target closes its connection (false when a pool shares it). */
    private readonly owned = true,
  ) {
    const c = o.conflict;
    if (typeof c === 'object' && 'expression' in c) this.predicate = compileConflictExpression(c.expression);
    this.staging = `_ix_sync_${createHash('sha1').update(`${o.stream}\0${o.table}`).digest('hex').slice(0, 16)}`;
  }

  /** Whether applying needs the stored rows (conflict detection). */
  get readsTarget(): boolean {
    return this.o.write === 'upsert' && this.o.conflict !== 'source-wins';
  }

  private get d() {
    return this.conn.driver.dialect;
  }

  private fail(detail: string): IxError {
    return new IxError('IX_SYNC_SCHEMA', { stream: this.o.stream, table: this.o.table, detail });
  }

  /** Checks the table before anything is written: it exists and has the columns the stream needs. */
  async prepare(): Promise<void> {
    const list = await this.conn.driver.tableColumns(this.o.table);
    if (list.length === 0) throw this.fail('the table does not exist');
    const set = new Set(list);
    const mark = typeof this.o.vanished === 'object' ? [this.o.vanished.mark] : [];
    const needed = [...this.o.key, ...(this.o.version ? [this.o.version] : []), ...mark, ...Object.keys(this.o.columns ?? {})];
    const missing = [...new Set(needed)].filter((c) => !set.has(c));
    if (missing.length > 0) throw this.fail(`no column ${missing.map((m) => `"${m}"`).join(', ')} (it has ${list.join(', ')})`);
    this.cols = set;
  }

  /** Fields of a record the table has no column for (a strict stream stops on them). */
  unknownFields(record: Record<string, unknown>, ignore?: string): string[] {
    if (this.o.columns || !this.o.strict) return [];
    const cols = this.cols as Set<string>;
    return Object.keys(record).filter((k) => !cols.has(k) && k !== ignore);
  }

  /** The row for a record: the `columns` mapping, or the fields named like columns. */
  toRow(record: Record<string, unknown>): Row {
    const row: Row = {};
    if (this.o.columns) {
      for (const [col, from] of Object.entries(this.o.columns)) {
        const v = getPath(record, from);
        row[col] = v === undefined ? null : v;
      }
    } else {
      const cols = this.cols as Set<string>;
      for (const [k, v] of Object.entries(record)) if (cols.has(k) && v !== undefined) row[k] = v;
    }
    if (typeof this.o.vanished === 'object') row[this.o.vanished.mark] = null;
    return row;
  }

  keyOf(row: Row): string {
    return keyOf(row, this.o.key);
  }

  tag(row: Row): string | undefined {
    const v = this.o.version ? row[this.o.version] : undefined;
    return v === undefined || v === null ? undefined : `${this.keyOf(row)}|${versionTag(v)}`;
  }

  /** Writes one batch in one transaction; records the keys of `staged` for the vanished sweep. */
  async apply(items: readonly TargetItem[], known: KnownVersions | undefined, staged: readonly TargetItem[] = []): Promise<ApplyResult> {
    const r: ApplyResult = { written: 0, deleted: 0, unchanged: 0, conflicts: 0, keptTarget: 0, failed: new Map(), applied: [] };
    if (items.length === 0 && staged.length === 0) return r;
    const staging = staged.length > 0;
    // Deletes run before the upserts: what came before a key's last delete in the batch is void.
    const live = supersededByDeletes(items);
    const dels = live.filter((i) => i.del);
    let rows = live.filter((i) => !i.del);
    if (this.o.write === 'upsert') rows = this.dedupe(rows);
    try {
      // One statement alone needs no explicit transaction (one round trip instead of three).
      const single = dels.length === 0 && !staging && !this.readsTarget && this.statementsFor(rows) === 1;
      const run = single ? <T>(fn: (c: SqlConn) => Promise<T>): Promise<T> => fn(this.conn.driver) : this.conn.driver.transaction.bind(this.conn.driver);
      await run(async (c) => {
        r.written = 0;
        r.applied.length = 0;
        r.deleted = await this.deleteKeys(c, dels);
        const winners = await this.decide(c, rows, known, r);
        await this.writeRows(c, winners);
        if (staging) await this.stageKeys(c, staged);
        r.written = winners.length;
        for (const w of winners) {
          const t = this.tag(w.row);
          if (t) r.applied.push(t);
        }
      });
    } catch (err) {
      if (this.conn.driver.classify(err) !== 'row') throw err;
      // One row is at fault: write row by row behind savepoints, so the rest commits.
      await this.conn.driver.transaction(async (c) => {
        r.written = 0;
        r.applied.length = 0;
        r.failed.clear();
        r.deleted = await this.deleteKeys(c, dels);
        const winners = await this.decide(c, rows, known, { ...r, conflicts: 0, keptTarget: 0, unchanged: 0 });
        for (const w of winners) {
          await c.query('SAVEPOINT ix_row');
          try {
            await this.writeRows(c, [w]);
            await c.query('RELEASE SAVEPOINT ix_row');
            r.written++;
            const t = this.tag(w.row);
            if (t) r.applied.push(t);
          } catch (e) {
            if (this.conn.driver.classify(e) !== 'row') throw e;
            await c.query('ROLLBACK TO SAVEPOINT ix_row');
            r.failed.set(w.index, this.conn.driver.reason(e));
          }
        }
        if (staging) await this.stageKeys(c, staged);
      });
    }
    return r;
  }

  /** One record per key in a batch: the last one read (the greatest version under newest-wins). */
  private dedupe(rows: TargetItem[]): TargetItem[] {
    const byKey = new Map<string, TargetItem>();
    const v = this.o.version;
    for (const it of rows) {
      const prev = byKey.get(it.key);
      if (prev && this.o.conflict === 'newest-wins' && v && versionGreater(prev.row[v], it.row[v])) continue;
      byKey.set(it.key, it);
    }
    return [...byKey.values()];
  }

  /** The rows to write after the conflict policy had its say. */
  private async decide(c: SqlConn, rows: TargetItem[], known: KnownVersions | undefined, r: ApplyResult): Promise<TargetItem[]> {
    if (!this.readsTarget || rows.length === 0) return rows;
    const stored = await this.readRows(c, rows);
    const v = this.o.version as string;
    const storedTags = rows.map((it) => {
      const s = stored.get(it.key);
      return s && s[v] !== null && s[v] !== undefined ? `${it.key}|${versionTag(s[v])}` : undefined;
    });
    const knownFlags = known ? await known(storedTags) : storedTags.map(() => false);
    const out: TargetItem[] = [];
    rows.forEach((it, i) => {
      const s = stored.get(it.key);
      if (!s) {
        out.push(it);
        return;
      }
      const sv = s[v];
      const iv = it.row[v];
      if (sv !== null && sv !== undefined && versionTag(sv) === versionTag(iv)) {
        r.unchanged++;
        return;
      }
      // The stored row is one the sync wrote itself: a plain update, not a conflict.
      if (knownFlags[i]) {
        if (this.o.conflict === 'newest-wins' && versionGreater(sv, iv)) r.unchanged++;
        else out.push(it);
        return;
      }
      r.conflicts++;
      const winner = this.resolve(it, s);
      this.o.logger.info(
        { stream: this.o.stream, key: it.key, sourceVersion: versionTag(iv), targetVersion: sv === null || sv === undefined ? null : versionTag(sv), policy: typeof this.o.conflict === 'string' ? this.o.conflict : Object.keys(this.o.conflict)[0], kept: winner ? 'source' : 'target' },
        'sync conflict',
      );
      if (winner) out.push(winner);
      else r.keptTarget++;
    });
    return out;
  }

  private resolve(it: TargetItem, stored: Row): TargetItem | undefined {
    const c = this.o.conflict;
    const v = this.o.version as string;
    if (c === 'source-wins') return it;
    if (c === 'target-wins') return undefined;
    if (c === 'newest-wins') return versionGreater(stored[v], it.row[v]) ? undefined : it;
    if ('merge' in c) {
      const row: Row = { ...it.row };
      for (const f of c.merge.target) if (f in stored) row[f] = stored[f];
      // The merged row is new: it carries the greater of both versions.
      if (versionGreater(stored[v], row[v])) row[v] = stored[v];
      return { ...it, row };
    }
    return (this.predicate as ConflictPredicate)(it.row, stored) ? it : undefined;
  }

  private async readRows(c: SqlConn, rows: readonly TargetItem[]): Promise<Map<string, Row>> {
    const d = this.d;
    const key = this.o.key;
    const out = new Map<string, Row>();
    const step = Math.max(1, Math.floor(Math.min(d.maxParams, 10_000) / key.length));
    const lock = d.name === 'sqlite' ? '' : ' FOR UPDATE';
    for (let off = 0; off < rows.length; off += step) {
      const chunk = rows.slice(off, off + step);
      const params: unknown[] = [];
      const tuples = chunk.map((it) => {
        const ph = key.map((k) => {
          params.push(d.value(it.row[k]));
          return d.param(params.length);
        });
        return key.length === 1 ? ph[0] : `(${ph.join(', ')})`;
      });
      const lhs = key.length === 1 ? d.quote(key[0] as string) : `(${key.map((k) => d.quote(k)).join(', ')})`;
      const res = await c.query(`SELECT * FROM ${quoteTable(d, this.o.table)} WHERE ${lhs} IN (${tuples.join(', ')})${lock}`, params);
      for (const row of res.rows) out.set(keyOf(row, key), row);
    }
    return out;
  }

  private async deleteKeys(c: SqlConn, dels: readonly TargetItem[]): Promise<number> {
    if (dels.length === 0) return 0;
    const d = this.d;
    let n = 0;
    const step = Math.max(1, Math.floor(2000 / this.o.key.length));
    for (let off = 0; off < dels.length; off += step) {
      const params: unknown[] = [];
      const conds = dels.slice(off, off + step).map((it) => {
        const parts = this.o.key.map((k) => {
          params.push(d.value(it.row[k]));
          return `${d.quote(k)} = ${d.param(params.length)}`;
        });
        return `(${parts.join(' AND ')})`;
      });
      n += (await c.query(`DELETE FROM ${quoteTable(d, this.o.table)} WHERE ${conds.join(' OR ')}`, params)).affected;
    }
    return n;
  }

  /** How many statements writing these rows takes. */
  private statementsFor(items: readonly TargetItem[]): number {
    let n = 0;
    for (const g of groupByColumns(items)) n += Math.ceil(g.items.length / this.rowsPerStatement(g.columns.length));
    return n;
  }

  private rowsPerStatement(columns: number): number {
    return Math.max(1, Math.floor(Math.min(this.d.maxParams, 30_000) / columns));
  }

  private async writeRows(c: SqlConn, items: readonly TargetItem[]): Promise<void> {
    const d = this.d;
    for (const g of groupByColumns(items)) {
      const per = this.rowsPerStatement(g.columns.length);
      for (let off = 0; off < g.items.length; off += per) {
        const chunk = g.items.slice(off, off + per);
        const params: unknown[] = [];
        for (const it of chunk) for (const col of g.columns) params.push(d.value(it.row[col]));
        await c.query(this.statement(g.columns, chunk.length), params);
      }
    }
  }

  private statement(columns: string[], rows: number): string {
    const k = `${rows}\0${columns.join('\0')}`;
    let sql = this.sqlCache.get(k);
    if (sql === undefined) {
      sql = this.conn.build({ table: this.o.table, columns, rows, mode: this.o.write === 'append' ? 'insert' : 'upsert', key: this.o.key, policy: 'source-wins' });
      if (this.sqlCache.size > 256) this.sqlCache.clear();
      this.sqlCache.set(k, sql);
    }
    return sql;
  }

  // ---- the keys of a full run, for the vanished sweep

  /** Creates the staging table (emptied when `fresh`: a new run, not a resumed one). */
  async openStaging(fresh: boolean): Promise<void> {
    const d = this.d;
    const s = d.quote(this.staging);
    const cols = this.o.key.map((k) => d.quote(k)).join(', ');
    if (fresh) await this.conn.driver.query(`DROP TABLE IF EXISTS ${s}`);
    await this.conn.driver.query(`CREATE TABLE IF NOT EXISTS ${s} AS SELECT ${cols} FROM ${quoteTable(d, this.o.table)} WHERE 1 = 0`);
  }

  private async stageKeys(c: SqlConn, items: readonly TargetItem[]): Promise<void> {
    const d = this.d;
    const key = this.o.key;
    const per = Math.max(1, Math.floor(Math.min(d.maxParams, 30_000) / key.length));
    for (let off = 0; off < items.length; off += per) {
      const chunk = items.slice(off, off + per);
      const params: unknown[] = [];
      const values = chunk.map(
        (it) =>
          `(${key
            .map((k) => {
              params.push(d.value(it.row[k]));
              return d.param(params.length);
            })
            .join(', ')})`,
      );
      await c.query(`INSERT INTO ${d.quote(this.staging)} (${key.map((k) => d.quote(k)).join(', ')}) VALUES ${values.join(', ')}`, params);
    }
  }

  /** Deletes or marks the rows whose key this full run did not see, then drops the staging table. */
  async sweep(): Promise<number> {
    const d = this.d;
    // A sweep that already ran dropped its staging table: an empty one must never be swept.
    if ((await this.conn.driver.tableColumns(this.staging)).length === 0) return 0;
    const t = quoteTable(d, this.o.table);
    const s = d.quote(this.staging);
    const match = this.o.key.map((k) => `${s}.${d.quote(k)} = ${t}.${d.quote(k)}`).join(' AND ');
    const absent = `NOT EXISTS (SELECT 1 FROM ${s} WHERE ${match})`;
    let n = 0;
    await this.conn.driver.transaction(async (c) => {
      const v = this.o.vanished;
      if (v === 'delete') n = (await c.query(`DELETE FROM ${t} WHERE ${absent}`)).affected;
      else if (typeof v === 'object') n = (await c.query(`UPDATE ${t} SET ${d.quote(v.mark)} = CURRENT_TIMESTAMP WHERE ${d.quote(v.mark)} IS NULL AND ${absent}`)).affected;
      if (d.name !== 'mysql') await c.query(`DROP TABLE ${s}`);
    });
    if (d.name === 'mysql') await this.conn.driver.query(`DROP TABLE IF EXISTS ${s}`);
    return n;
  }

  async close(): Promise<void> {
    if (this.owned) await this.conn.driver.close();
  }
}
