import type pg from 'pg';
import type { Logger } from '../../core/logger.js';
import { jsonish, quoteIdentWith, quoteTable, type Dialect, type ErrorClass, type SqlConn, type SqlDriver, type SqlResult } from '../sql-common.js';
import type { PollDriver, PollPosition, PolledRow } from '../sql-poll.js';
import type { WriteShape } from '../sql-sink.js';
import { lazyModule } from '../../core/lazy-module.js';

/** Loaded on first use: a spec on the default SQLite store without PostgreSQL never loads it. */
const pgModule = lazyModule<typeof pg>('pg');

export const pgDialect: Dialect = {
  name: 'postgres',
  maxParams: 65_535,
  quote: quoteIdentWith('"'),
  param: (n) => `$${n}`,
  value: jsonish,
};

/** INSERT … ON CONFLICT for one write shape. */
export function pgWriteSql(s: WriteShape): string {
  const d = pgDialect;
  const table = quoteTable(d, s.table);
  const cols = s.columns.map((c) => d.quote(c));
  const values: string[] = [];
  let n = 0;
  for (let r = 0; r < s.rows; r++) values.push(`(${s.columns.map(() => d.param(++n)).join(', ')})`);
  let sql = `INSERT INTO ${table} AS t (${cols.join(', ')}) VALUES ${values.join(', ')}`;
  if (s.mode === 'insert') {
    if (s.idColumn) sql += ` ON CONFLICT (${d.quote(s.idColumn)}) DO NOTHING`;
    return sql;
  }
  const target = `(${s.key.map((k) => d.quote(k)).join(', ')})`;
  const updatable = s.columns.filter((c) => !s.key.includes(c));
  if (s.policy === 'target-wins' || updatable.length === 0) return `${sql} ON CONFLICT ${target} DO NOTHING`;
  sql += ` ON CONFLICT ${target} DO UPDATE SET ${updatable.map((c) => `${d.quote(c)} = EXCLUDED.${d.quote(c)}`).join(', ')}`;
  if (s.policy === 'newest-wins') {
    const v = d.quote(s.version as string);
    sql += ` WHERE t.${v} IS NULL OR t.${v} < EXCLUDED.${v}`;
  }
  return sql;
}

const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '40001', '40P01', '53300', '55P03']);

export function pgClassify(err: unknown): ErrorClass {
  const e = err as { code?: string; message?: string } | undefined;
  const code = e?.code ?? '';
  if (/^(23|22)/.test(code)) return 'row';
  if (TRANSIENT_CODES.has(code) || code.startsWith('08') || code.startsWith('53')) return 'transient';
  if (/^(42|3F|0A)/.test(code)) return 'fatal';
  const msg = e?.message ?? '';
  if (/Connection terminated|not queryable|timeout exceeded|connection error|Client was closed/i.test(msg)) return 'transient';
  return 'transient';
}

export function pgReason(err: unknown): string {
  const e = err as { code?: string; message?: string; detail?: string; constraint?: string } | undefined;
  if (!e || typeof e !== 'object') return String(err);
  let s = e.message ?? String(err);
  if (e.code) s += ` (SQLSTATE ${e.code})`;
  if (e.detail) s += `: ${e.detail}`;
  return s;
}

export interface PgConnectOptions {
  readonly url: string;
  readonly maxConnections?: number;
  readonly logger: Logger;
  readonly applicationName?: string;
}

export function createPgPool(o: PgConnectOptions): pg.Pool {
  const pool = new (pgModule().Pool)({
    connectionString: o.url,
    max: o.maxConnections ?? 4,
    application_name: o.applicationName ?? 'interchange',
    connectionTimeoutMillis: 10_000,
  });
  // An idle client whose server went away: the pool drops it; the next checkout reconnects.
  pool.on('error', (err) => o.logger.warn({ reason: pgReason(err) }, 'idle PostgreSQL connection lost'));
  return pool;
}

function wrap(res: pg.QueryResult): SqlResult {
  return { rows: res.rows as Record<string, unknown>[], affected: res.rowCount ?? 0 };
}

export class PgDriver implements SqlDriver, PollDriver {
  readonly dialect = pgDialect;
  readonly db = 'postgres';
  constructor(readonly pool: pg.Pool) {}

  async transaction<T>(fn: (conn: SqlConn) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    // A connection lost while checked out emits 'error'; the pending query rejects with it.
    const onError = (): void => undefined;
    client.on('error', onError);
    const conn: SqlConn = { query: async (sql, params) => wrap(await client.query(sql, params as unknown[])) };
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const out = await fn(conn);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      if (pgClassify(err) === 'transient') broken = err as Error;
      else await client.query('ROLLBACK').catch((e: unknown) => (broken = e as Error));
      throw err;
    } finally {
      // A connection that failed is destroyed rather than returned to the pool.
      client.off('error', onError);
      client.release(broken ?? false);
    }
  }

  async query(sql: string, params?: readonly unknown[]): Promise<SqlResult> {
    return wrap(await this.pool.query(sql, params as unknown[]));
  }

  classify(err: unknown): ErrorClass {
    return pgClassify(err);
  }

  reason(err: unknown): string {
    return pgReason(err);
  }

  async tableColumns(table: string): Promise<string[]> {
    const parts = table.split('.');
    const name = parts.pop() as string;
    const schema = parts.pop();
    const res = await this.pool.query(
      `SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND table_schema = COALESCE($2, current_schema()) ORDER BY ordinal_position`,
      [name, schema ?? null],
    );
    return res.rows.map((r: { column_name: string }) => r.column_name);
  }

  // ---- polling
  private poll: { table: string; cursor: string; key: string; columns?: string[]; where?: string } | undefined;

  forPolling(o: { table: string; cursor: string; key: string; columns?: string[]; where?: string }): this {
    this.poll = o;
    return this;
  }

  async fetch(after: PollPosition | undefined, limit: number): Promise<PolledRow[]> {
    const o = this.poll as NonNullable<typeof this.poll>;
    const q = pgDialect.quote;
    const c = q(o.cursor);
    const k = q(o.key);
    const select = o.columns ? o.columns.map(q).join(', ') : '*';
    const conds: string[] = [`${c} IS NOT NULL`];
    const params: unknown[] = [];
    if (after) {
      params.push(after.c);
      if (after.k === null || after.k === undefined) conds.push(`${c} > $1`);
      else {
        params.push(after.k);
        conds.push(`(${c}, ${k}) > ($1, $2)`);
      }
    }
    if (o.where) conds.push(`(${o.where})`);
    params.push(limit);
    // The cursor and key travel as text so a timestamp keeps its microseconds.
    const sql = `SELECT ${select}, ${c}::text AS "__ix_c", ${k}::text AS "__ix_k" FROM ${quoteTable(pgDialect, o.table)} WHERE ${conds.join(' AND ')} ORDER BY ${c}, ${k} LIMIT $${params.length}`;
    const res = await this.pool.query(sql, params);
    return res.rows.map((r: Record<string, unknown>) => {
      const { __ix_c, __ix_k, ...row } = r;
      return { row, pos: { c: __ix_c, k: __ix_k } };
    });
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
