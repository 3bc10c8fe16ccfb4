import Database from 'better-sqlite3';
import { quoteIdentWith, quoteTable, type Dialect, type ErrorClass, type SqlConn, type SqlDriver, type SqlResult } from '../sql-common.js';
import type { PollDriver, PollPosition, PolledRow } from '../sql-poll.js';
import type { WriteShape } from '../sql-sink.js';

function sqliteValue(v: unknown): unknown {
  if (v === undefined || v === null) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object' && !Buffer.isBuffer(v)) return JSON.stringify(v);
  return v;
}

export const sqliteDialect: Dialect = {
  name: 'sqlite',
  maxParams: 32_000,
  quote: quoteIdentWith('"'),
  param: () => '?',
  value: sqliteValue,
};

/** INSERT … ON CONFLICT (SQLite 3.24+) for one write shape. */
export function sqliteWriteSql(s: WriteShape): string {
  const d = sqliteDialect;
  const table = quoteTable(d, s.table);
  const row = `(${s.columns.map(() => '?').join(', ')})`;
  let sql = `INSERT INTO ${table} (${s.columns.map((c) => d.quote(c)).join(', ')}) VALUES ${Array.from({ length: s.rows }, () => row).join(', ')}`;
  if (s.mode === 'insert') {
    if (s.idColumn) sql += ` ON CONFLICT (${d.quote(s.idColumn)}) DO NOTHING`;
    return sql;
  }
  const target = `(${s.key.map((k) => d.quote(k)).join(', ')})`;
  const updatable = s.columns.filter((c) => !s.key.includes(c));
  if (s.policy === 'target-wins' || updatable.length === 0) return `${sql} ON CONFLICT ${target} DO NOTHING`;
  sql += ` ON CONFLICT ${target} DO UPDATE SET ${updatable.map((c) => `${d.quote(c)} = excluded.${d.quote(c)}`).join(', ')}`;
  if (s.policy === 'newest-wins') {
    const v = d.quote(s.version as string);
    sql += ` WHERE ${table}.${v} IS NULL OR ${table}.${v} < excluded.${v}`;
  }
  return sql;
}

export function sqliteClassify(err: unknown): ErrorClass {
  const code = (err as { code?: string } | undefined)?.code ?? '';
  if (code.startsWith('SQLITE_CONSTRAINT') || code === 'SQLITE_MISMATCH' || code === 'SQLITE_TOOBIG' || code === 'SQLITE_RANGE') return 'row';
  if (err instanceof TypeError || err instanceof RangeError) return 'row';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED') || code.startsWith('SQLITE_IOERR') || code === 'SQLITE_FULL' || code === 'SQLITE_PROTOCOL') {
    return 'transient';
  }
  return 'fatal';
}

export function sqliteReason(err: unknown): string {
  const e = err as { message?: string; code?: string } | undefined;
  if (!e || typeof e !== 'object') return String(err);
  return e.code ? `${e.message} (${e.code})` : (e.message ?? String(err));
}

/** One connection; transactions are serialized (better-sqlite3 is synchronous). */
export class SqliteDriver implements SqlDriver, PollDriver {
  readonly dialect = sqliteDialect;
  readonly db = 'sqlite';
  private readonly statements = new Map<string, Database.Statement>();
  private lock: Promise<unknown> = Promise.resolve();

  constructor(readonly database: Database.Database) {}

  static open(path: string, busyTimeoutMs = 5000): SqliteDriver {
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma(`busy_timeout = ${Math.floor(busyTimeoutMs)}`);
    return new SqliteDriver(db);
  }

  private run(sql: string, params: readonly unknown[] = []): SqlResult {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.database.prepare(sql);
      if (this.statements.size > 200) this.statements.clear();
      this.statements.set(sql, stmt);
    }
    if (stmt.reader) {
      const rows = stmt.all(...params) as Record<string, unknown>[];
      return { rows, affected: rows.length };
    }
    return { rows: [], affected: stmt.run(...params).changes };
  }

  transaction<T>(fn: (conn: SqlConn) => Promise<T>): Promise<T> {
    const next = this.lock.then(async () => {
      const conn: SqlConn = { query: async (sql, params) => this.run(sql, params) };
      this.database.exec('BEGIN IMMEDIATE');
      try {
        const out = await fn(conn);
        this.database.exec('COMMIT');
        return out;
      } catch (err) {
        if (this.database.inTransaction) this.database.exec('ROLLBACK');
        throw err;
      }
    });
    this.lock = next.catch(() => undefined);
    return next;
  }

  async query(sql: string, params?: readonly unknown[]): Promise<SqlResult> {
    return this.run(sql, params);
  }

  classify(err: unknown): ErrorClass {
    return sqliteClassify(err);
  }

  reason(err: unknown): string {
    return sqliteReason(err);
  }

  async tableColumns(table: string): Promise<string[]> {
    const parts = table.split('.');
    const name = parts.pop() as string;
    const schema = parts.pop();
    const sql = `PRAGMA ${schema ? `${sqliteDialect.quote(schema)}.` : ''}table_info(${sqliteDialect.quote(name)})`;
    return (this.database.prepare(sql).all() as { name: string }[]).map((r) => r.name);
  }

  private poll: { table: string; cursor: string; key: string; columns?: string[]; where?: string } | undefined;

  forPolling(o: { table: string; cursor: string; key: string; columns?: string[]; where?: string }): this {
    this.poll = o;
    return this;
  }

  async fetch(after: PollPosition | undefined, limit: number): Promise<PolledRow[]> {
    const o = this.poll as NonNullable<typeof this.poll>;
    const q = sqliteDialect.quote;
    const c = q(o.cursor);
    const k = q(o.key);
    const select = o.columns ? o.columns.map(q).join(', ') : '*';
    const conds: string[] = [`${c} IS NOT NULL`];
    const params: unknown[] = [];
    if (after) {
      if (after.k === null || after.k === undefined) {
        conds.push(`${c} > ?`);
        params.push(after.c);
      } else {
        conds.push(`(${c} > ? OR (${c} = ? AND ${k} > ?))`);
        params.push(after.c, after.c, after.k);
      }
    }
    if (o.where) conds.push(`(${o.where})`);
    params.push(Math.floor(limit));
    const sql = `SELECT ${select}, ${c} AS __ix_c, ${k} AS __ix_k FROM ${quoteTable(sqliteDialect, o.table)} WHERE ${conds.join(' AND ')} ORDER BY ${c}, ${k} LIMIT ?`;
    return this.run(sql, params).rows.map((r) => {
      const { __ix_c, __ix_k, ...row } = r;
      return { row, pos: { c: __ix_c, k: __ix_k } };
    });
  }

  async close(): Promise<void> {
    if (this.database.open) this.database.close();
  }
}
