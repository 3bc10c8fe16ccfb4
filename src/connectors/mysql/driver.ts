import type mysqlModule from 'mysql2/promise';
import { lazyModule } from '../../core/lazy-module.js';
import type { Logger } from '../../core/logger.js';
import { jsonish, quoteIdentWith, quoteTable, type Dialect, type ErrorClass, type SqlConn, type SqlDriver, type SqlResult } from '../sql-common.js';
import type { PollDriver, PollPosition, PolledRow } from '../sql-poll.js';
import type { WriteShape } from '../sql-sink.js';

const mysql = lazyModule<typeof mysqlModule>('mysql2/promise');

export const mysqlDialect: Dialect = {
  name: 'mysql',
  maxParams: 60_000,
  quote: quoteIdentWith('`'),
  param: () => '?',
  value: jsonish,
};

/**
 * INSERT … ON DUPLICATE KEY UPDATE for one write shape. MySQL decides a conflict on any
 * unique index of the table, so the table's only unique indexes should be the key's.
 * `newest-wins` assigns the version column last: MySQL evaluates assignments left to right.
 */
export function mysqlWriteSql(s: WriteShape): string {
  const d = mysqlDialect;
  const cols = s.columns.map((c) => d.quote(c));
  const row = `(${s.columns.map(() => '?').join(', ')})`;
  const sql = `INSERT INTO ${quoteTable(d, s.table)} (${cols.join(', ')}) VALUES ${Array.from({ length: s.rows }, () => row).join(', ')}`;
  if (s.mode === 'insert') return sql;
  const firstKey = d.quote(s.key[0] as string);
  const updatable = s.columns.filter((c) => !s.key.includes(c));
  if (s.policy === 'target-wins' || updatable.length === 0) return `${sql} ON DUPLICATE KEY UPDATE ${firstKey} = ${firstKey}`;
  if (s.policy === 'newest-wins') {
    const v = d.quote(s.version as string);
    const newer = `(${v} IS NULL OR ${v} < VALUES(${v}))`;
    const ordered = [...updatable.filter((c) => c !== s.version), ...updatable.filter((c) => c === s.version)];
    return `${sql} ON DUPLICATE KEY UPDATE ${ordered.map((c) => `${d.quote(c)} = IF(${newer}, VALUES(${d.quote(c)}), ${d.quote(c)})`).join(', ')}`;
  }
  return `${sql} ON DUPLICATE KEY UPDATE ${updatable.map((c) => `${d.quote(c)} = VALUES(${d.quote(c)})`).join(', ')}`;
}

/** Errors a single row causes (by errno): constraint, null, range, length, value. */
const ROW_ERRNOS = new Set([1048, 1364, 1062, 1169, 1216, 1217, 1264, 1265, 1292, 1366, 1406, 1451, 1452, 1557, 1586, 3819, 4025, 1411, 1367]);
const TRANSIENT_ERRNOS = new Set([1040, 1053, 1077, 1078, 1079, 1080, 1081, 1152, 1153, 1154, 1156, 1157, 1158, 1159, 1160, 1161, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2055]);
const TRANSIENT_CODES = new Set(['PROTOCOL_CONNECTION_LOST', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'PROTOCOL_SEQUENCE_TIMEOUT']);

export function mysqlClassify(err: unknown): ErrorClass {
  const e = err as { errno?: number; code?: string; sqlState?: string; fatal?: boolean; message?: string } | undefined;
  if (e?.errno !== undefined && ROW_ERRNOS.has(e.errno)) return 'row';
  if (e?.sqlState?.startsWith('23') || e?.sqlState?.startsWith('22')) return 'row';
  if (e?.fatal || (e?.code && TRANSIENT_CODES.has(e.code)) || (e?.errno !== undefined && TRANSIENT_ERRNOS.has(e.errno))) return 'transient';
  if (e?.sqlState?.startsWith('42')) return 'fatal';
  if (/closed state|Connection lost|Pool is closed/i.test(e?.message ?? '')) return 'transient';
  return 'transient';
}

export function mysqlReason(err: unknown): string {
  const e = err as { message?: string; code?: string; errno?: number; sqlState?: string } | undefined;
  if (!e || typeof e !== 'object') return String(err);
  let s = e.message ?? String(err);
  if (e.code && e.errno !== undefined) s += ` (${e.code} ${e.errno}${e.sqlState ? `, SQLSTATE ${e.sqlState}` : ''})`;
  return s;
}

export interface MysqlConnectOptions {
  readonly url: string;
  readonly maxConnections?: number;
  readonly logger: Logger;
}

export function createMysqlPool(o: MysqlConnectOptions): mysqlModule.Pool {
  const pool = mysql().createPool({
    uri: o.url,
    connectionLimit: o.maxConnections ?? 4,
    timezone: 'Z',
    supportBigNumbers: true,
    bigNumberStrings: false,
    connectTimeout: 10_000,
    // Reconnect is the pool's job: a dead connection is dropped and a new one made.
    enableKeepAlive: true,
  });
  pool.on('connection', (conn) => {
    conn.on('error', (err) => o.logger.warn({ reason: mysqlReason(err) }, 'MySQL connection lost'));
  });
  return pool;
}

function wrap(res: unknown): SqlResult {
  if (Array.isArray(res)) return { rows: res as Record<string, unknown>[], affected: res.length };
  const h = res as { affectedRows?: number };
  return { rows: [], affected: h.affectedRows ?? 0 };
}

export class MysqlDriver implements SqlDriver, PollDriver {
  readonly dialect = mysqlDialect;
  readonly db = 'mysql';
  constructor(readonly pool: mysqlModule.Pool) {}

  async transaction<T>(fn: (conn: SqlConn) => Promise<T>): Promise<T> {
    const c = await this.pool.getConnection();
    const conn: SqlConn = { query: async (sql, params) => wrap((await c.query(sql, params as unknown[]))[0]) };
    let broken = false;
    try {
      await c.query('START TRANSACTION');
      const out = await fn(conn);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      if (mysqlClassify(err) === 'transient') broken = true;
      else await c.query('ROLLBACK').catch(() => (broken = true));
      throw err;
    } finally {
      if (broken) c.destroy();
      else c.release();
    }
  }

  async query(sql: string, params?: readonly unknown[]): Promise<SqlResult> {
    return wrap((await this.pool.query(sql, params as unknown[]))[0]);
  }

  classify(err: unknown): ErrorClass {
    return mysqlClassify(err);
  }

  reason(err: unknown): string {
    return mysqlReason(err);
  }

  async tableColumns(table: string): Promise<string[]> {
    const parts = table.split('.');
    const name = parts.pop() as string;
    const schema = parts.pop();
    const [rows] = await this.pool.query(
      'SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_NAME = ? AND TABLE_SCHEMA = COALESCE(?, DATABASE()) ORDER BY ORDINAL_POSITION',
      [name, schema ?? null],
    );
    return (rows as { c: string }[]).map((r) => r.c);
  }

  private poll: { table: string; cursor: string; key: string; columns?: string[]; where?: string } | undefined;

  forPolling(o: { table: string; cursor: string; key: string; columns?: string[]; where?: string }): this {
    this.poll = o;
    return this;
  }

  async fetch(after: PollPosition | undefined, limit: number): Promise<PolledRow[]> {
    const o = this.poll as NonNullable<typeof this.poll>;
    const q = mysqlDialect.quote;
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
    // Cursor and key as text keep a DATETIME(6)'s microseconds and a BIGINT's digits.
    const sql = `SELECT ${select}, CAST(${c} AS CHAR) AS __ix_c, CAST(${k} AS CHAR) AS __ix_k FROM ${quoteTable(mysqlDialect, o.table)} WHERE ${conds.join(' AND ')} ORDER BY ${c}, ${k} LIMIT ${Math.floor(limit)}`;
    const [rows] = await this.pool.query(sql, params);
    return (rows as Record<string, unknown>[]).map((r) => {
      const { __ix_c, __ix_k, ...row } = r;
      return { row, pos: { c: __ix_c, k: __ix_k } };
    });
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
