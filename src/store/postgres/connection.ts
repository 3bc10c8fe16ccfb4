import type pg from 'pg';
import { IxError } from '../../core/errors.js';
import { lazyModule } from '../../core/lazy-module.js';

/** Loaded on first use: a spec on the default SQLite store without PostgreSQL never loads it. */
const pgModule = lazyModule<typeof pg>('pg');

/** Where and how to connect; parsed from `postgres://user@host:port/db?schema=ix&pool=10`. */
export interface PostgresConnectionOptions {
  /** A libpq-style URL (`postgres://` or `postgresql://`). The password, if any, never appears in errors. */
  readonly url: string;
  /**
   * The schema holding the store's tables; created by the first migration run.
   * @defaultValue `interchange` (or the URL's `?schema=`)
   */
  readonly schema?: string;
  /**
   * Most connections this process opens (the pools' limit): half for commits that take a
   * message over (enqueues, dead letters; durable when answered), half for the rest (claims,
   * completions, leases: committed without waiting for the WAL flush), at least one each.
   * Each worker process needs a few; keep `workers × max` under the server's `max_connections`.
   * @defaultValue 10 (or the URL's `?pool=`)
   */
  readonly max?: number;
  /** @defaultValue 5000 */
  readonly connectTimeoutMs?: number;
  /** @defaultValue 30000 */
  readonly statementTimeoutMs?: number;
  /** Shown in `pg_stat_activity`. @defaultValue `interchange` */
  readonly applicationName?: string;
}

export interface ResolvedConnection {
  readonly connectionString: string;
  readonly schema: string;
  readonly max: number;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
  readonly applicationName: string;
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,54}$/;
const OUR_PARAMS = ['schema', 'pool'];

/** True for a store URL this module handles. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

export function resolveConnection(options: PostgresConnectionOptions): ResolvedConnection {
  const bad = (detail: string): IxError => new IxError('IX_STORE_POSTGRES_URL', { url: redactUrl(options.url), detail });
  if (!isPostgresUrl(options.url)) throw bad('it must start with postgres:// or postgresql://');
  let parsed: URL;
  try {
    parsed = new URL(options.url);
  } catch {
    throw bad('not a URL');
  }
  const schema = options.schema ?? parsed.searchParams.get('schema') ?? 'interchange';
  if (!SCHEMA.test(schema)) {
    throw bad(`schema "${schema}" must be lower-case letters, digits and _ (at most 55)`);
  }
  const poolParam = parsed.searchParams.get('pool');
  const max = options.max ?? (poolParam === null ? 10 : Number(poolParam));
  if (!Number.isInteger(max) || max < 1) throw bad('pool must be a positive integer');
  for (const p of OUR_PARAMS) parsed.searchParams.delete(p);
  return {
    connectionString: parsed.toString(),
    schema,
    max,
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    statementTimeoutMs: options.statementTimeoutMs ?? 30_000,
    applicationName: options.applicationName ?? 'interchange',
  };
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]*):[^@]*@/i, '$1:***@');
}

/** int8 (counts, bigint columns) as numbers: every value the store keeps fits in 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20 ? (v: string) => Number(v) : pgModule().types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/**
 * Session settings of the store's connections: its schema, and a planner that walks indexes.
 * Every store query is an index lookup or an ordered index walk with a limit; right after a
 * bulk enqueue the statistics say the queue is nearly empty and the planner would rather
 * collect and sort every ready row on each claim (O(queue) instead of O(batch)).
 * `enable_sort=off` prices the sorts that remain (a few sorted keys) at 10^10, which would
 * make PostgreSQL JIT-compile such a query every time (100–200 ms each): JIT is off.
 */
const SESSION_OPTIONS = (schema: string): string => `-c search_path=${schema} -c enable_bitmapscan=off -c enable_sort=off -c jit=off`;

/**
 * A pool whose connections use the store's schema. With `asyncCommit`, its sessions commit
 * without waiting for the WAL flush (`synchronous_commit = off`): for the commits that only
 * record progress (see `NamedQuery.durable` in queries.ts).
 */
export function createPool(c: ResolvedConnection, max = c.max, options: { readonly asyncCommit?: boolean } = {}): pg.Pool {
  const pool = new (pgModule().Pool)({
    connectionString: c.connectionString,
    max,
    connectionTimeoutMillis: c.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    statement_timeout: c.statementTimeoutMs,
    application_name: c.applicationName,
    options: `${SESSION_OPTIONS(c.schema)}${options.asyncCommit ? ' -c synchronous_commit=off' : ''}`,
    keepAlive: true,
    types,
  });
  // An idle connection that breaks (server restart) is dropped by the pool; the next query
  // opens a new one. Without a listener the error would crash the process.
  pool.on('error', () => undefined);
  return pool;
}

/** A single connection (for LISTEN), same settings as the pool's. */
export function createClient(c: ResolvedConnection): pg.Client {
  return new (pgModule().Client)({
    connectionString: c.connectionString,
    connectionTimeoutMillis: c.connectTimeoutMs,
    application_name: `${c.applicationName}:listen`,
    options: `-c search_path=${c.schema}`,
    keepAlive: true,
    types,
  });
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const RETRYABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '53400', '40001', '40P01', '55P03', '57014']);

/** Whether an error means the database is (for now) out of reach or busy, not that the query is wrong. */
export function isUnavailable(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (CONNECTION_CODES.has(code) || RETRYABLE_SQLSTATES.has(code) || code.startsWith('08')) return true;
  }
  const message = (err as { message?: unknown }).message;
  return (
    typeof message === 'string' &&
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended|connect ECONNREFUSED|Client was closed/i.test(message)
  );
}

/** Turns an unreachable database into the catalog's retryable `IX_STORE_UNAVAILABLE`. */
export function storeError(err: unknown): unknown {
  if (err instanceof IxError) return err;
  if (isUnavailable(err)) {
    const detail = `PostgreSQL: ${(err as Error).message || (err as { code?: string }).code || 'unreachable'}`;
    return new IxError('IX_STORE_UNAVAILABLE', { detail }, { cause: err });
  }
  return err;
}
