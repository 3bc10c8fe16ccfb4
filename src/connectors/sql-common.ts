/**
 * What the PostgreSQL, MySQL/MariaDB and SQLite connectors share: the sink and polling-source
 * config schemas, column mapping from a message, the conflict policies, and the driver port
 * each database implements (`SqlDriver`). No database client is imported here.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { Message } from '../core/message.js';
import { DurationType } from '../registry/types.js';

// ---------------------------------------------------------------- config

const KeyType = Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], {
  description: 'The key column, or several for a composite key. Upserts need a primary key or unique index on exactly these columns.',
});

/** Keys every SQL sink shares (each database adds how to connect). */
export const sqlSinkFields = {
  table: Type.String({ minLength: 1, description: 'Target table; `schema.table` is accepted.' }),
  mode: Type.Optional(
    Type.Union([Type.Literal('insert'), Type.Literal('upsert')], {
      default: 'insert',
      description: '`insert` adds rows; `upsert` inserts or updates by `key` under `onConflict`.',
    }),
  ),
  key: Type.Optional(KeyType),
  onConflict: Type.Optional(
    Type.Union(
      [
        Type.Literal('newest-wins'),
        Type.Literal('source-wins'),
        Type.Literal('target-wins'),
        Type.Object({ expression: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
      ],
      {
        default: 'source-wins',
        description:
          'When a row with the key exists: `newest-wins` keeps the row with the greater `version`, `source-wins` overwrites, `target-wins` keeps the stored row, `{ expression }` overwrites when the expression over `source.*` and `target.*` is true.',
      },
    ),
  ),
  version: Type.Optional(Type.String({ minLength: 1, description: 'The version or timestamp column `newest-wins` compares.' })),
  columns: Type.Optional(
    Type.Record(Type.String({ minLength: 1 }), Type.String({ minLength: 1 }), {
      description:
        'Column ← value. A value is a dotted path in the payload (`customer.name`), or `$id` (message id), `$key`, `$payload` (the whole payload as JSON), `$header.NAME`, `$meta.NAME`. Without it, the payload\'s top-level fields that are columns of the table are written.',
    }),
  ),
  idColumn: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'A column with a unique index that receives the message id. In `insert` mode a message whose id is already there is skipped, so redelivery writes nothing twice.',
    }),
  ),
  delete: Type.Optional(
    Type.Object(
      {
        when: Type.String({ minLength: 1, description: 'Where the operation is: a payload path (`op`) or `$meta.NAME` / `$header.NAME`.' }),
        equals: Type.Optional(
          Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })], { default: 'delete', description: 'The value(s) that mean "delete this key".' }),
        ),
      },
      {
        additionalProperties: false,
        description:
          'Upsert mode: a message whose `when` value is one of `equals` deletes the row with its key instead of writing it (change streams, full syncs).',
      },
    ),
  ),
  maxConnections: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 4, description: 'Connection pool size.' })),
};

export const SqlSinkCommon = Type.Object(sqlSinkFields, { additionalProperties: false });
export type SqlSinkCommon = Static<typeof SqlSinkCommon>;

/** Keys every polling source shares. */
export const sqlPollFields = {
  table: Type.String({ minLength: 1, description: 'Table (or view) to read; `schema.table` is accepted.' }),
  cursor: Type.String({ minLength: 1, description: 'Column that grows with every change (an updated_at timestamp, a sequence).' }),
  key: Type.String({
    minLength: 1,
    description: 'Unique column: the message key, and the tiebreak among rows with the same cursor value so none is skipped.',
  }),
  columns: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Columns to read; all by default.' })),
  where: Type.Optional(Type.String({ minLength: 1, description: 'An extra SQL condition, e.g. `status <> \'draft\'`.' })),
  interval: Type.Optional(DurationType({ default: '5s', description: 'Pause between polls once caught up.' })),
  schedule: Type.Optional(Type.String({ minLength: 1, description: 'A cron expression: poll at these times once caught up (instead of `interval`).' })),
  start: Type.Optional(
    Type.Union([Type.String(), Type.Number()], { description: 'Read rows with a cursor greater than this on the first run (no checkpoint yet).' }),
  ),
  batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'Rows per query; the flow\'s batch size by default.' })),
  maxInFlight: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, default: 4, description: 'Batches read ahead before the oldest settles.' })),
  stopWhenCaughtUp: Type.Optional(Type.Boolean({ default: false, description: 'End the source once every row was read and settled (one-shot runs).' })),
};

// ---------------------------------------------------------------- driver port

/** How a database error is treated. */
export type ErrorClass =
  /** This row is at fault (constraint, bad value): dead-letter the row, commit the rest. */
  | 'row'
  /** The connection or server went away, a deadlock, a serialization failure: try again. */
  | 'transient'
  /** The statement can never succeed (missing table or column, syntax): stop. */
  | 'fatal';

export interface SqlResult {
  readonly rows: Record<string, unknown>[];
  readonly affected: number;
}

export interface SqlConn {
  query(sql: string, params?: readonly unknown[]): Promise<SqlResult>;
}

export interface Dialect {
  readonly name: 'postgres' | 'mysql' | 'sqlite';
  /** Most bind parameters in one statement. */
  readonly maxParams: number;
  quote(ident: string): string;
  /** The placeholder for the nth (1-based) parameter. */
  param(n: number): string;
  /** A value as the client library binds it. */
  value(v: unknown): unknown;
}

export interface SqlDriver {
  readonly dialect: Dialect;
  /** Runs `fn` in one transaction on one connection: commit when it resolves, roll back when it throws. */
  transaction<T>(fn: (conn: SqlConn) => Promise<T>): Promise<T>;
  /** A statement outside a transaction (reads). */
  query(sql: string, params?: readonly unknown[]): Promise<SqlResult>;
  classify(err: unknown): ErrorClass;
  /** The database's reason, for a dead letter or a log line (never connection secrets). */
  reason(err: unknown): string;
  /** Column names of a table, or [] when it does not exist. */
  tableColumns(table: string): Promise<string[]>;
  close(): Promise<void>;
}

/** `schema.table` → quoted parts. */
export function quoteTable(d: Dialect, table: string): string {
  return table
    .split('.')
    .map((p) => d.quote(p))
    .join('.');
}

export function quoteIdentWith(q: string) {
  return (ident: string): string => {
    if (ident.length === 0 || ident.includes('\0')) throw new TypeError(`invalid identifier "${ident}"`);
    return q + ident.split(q).join(q + q) + q;
  };
}

// ---------------------------------------------------------------- column mapping

export type Row = Record<string, unknown>;

/** Why a message cannot become a row (dead-lettered at once). */
export class RowMappingError extends Error {}

/** The value at a dotted path of an object, or undefined. */
export function getPath(obj: unknown, path: string): unknown {
  let v = obj;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** A value of a message: `$id`, `$key`, `$payload`, `$header.NAME`, `$meta.NAME`, or a payload path. */
export function valueOf(msg: Message, from: string): unknown {
  let v: unknown;
  if (from === '$id') v = msg.id;
  else if (from === '$key') v = msg.key ?? null;
  else if (from === '$payload') v = JSON.stringify(msg.payload);
  else if (from.startsWith('$header.')) v = msg.headers[from.slice(8)];
  else if (from.startsWith('$meta.')) v = msg.meta[from.slice(6)];
  else v = getPath(msg.payload, from.startsWith('$.') ? from.slice(2) : from);
  return v === undefined ? null : v;
}

/** Builds the row for one message: explicit `columns`, or the payload's fields that are table columns. */
export function mapRow(msg: Message, columns: Record<string, string> | undefined, tableColumns: ReadonlySet<string>, idColumn?: string): Row {
  const row: Row = {};
  if (columns) {
    for (const [col, from] of Object.entries(columns)) row[col] = valueOf(msg, from);
  } else {
    const p = msg.payload;
    if (p === null || typeof p !== 'object' || Array.isArray(p)) {
      throw new RowMappingError(`payload is ${Array.isArray(p) ? 'an array' : p === null ? 'null' : typeof p}, not an object of columns`);
    }
    for (const [k, v] of Object.entries(p as Record<string, unknown>)) {
      if (tableColumns.has(k) && v !== undefined) row[k] = v;
    }
  }
  if (idColumn) row[idColumn] = msg.id;
  if (Object.keys(row).length === 0) throw new RowMappingError('no payload field matches a column of the table');
  return row;
}

/** Plain objects and arrays go in as JSON text; Dates and Buffers as they are. */
export function jsonish(v: unknown): unknown {
  if (v === undefined) return null;
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Date || Buffer.isBuffer(v) || v instanceof Uint8Array) return v;
  return JSON.stringify(v);
}

/** Rows with the same set of columns share a statement: items grouped by their row's columns. */
export function groupByColumns<T extends { readonly row: Row }>(items: readonly T[]): { columns: string[]; items: T[] }[] {
  const groups = new Map<string, { columns: string[]; items: T[] }>();
  for (const it of items) {
    const columns = Object.keys(it.row);
    const sig = columns.join('\0');
    const g = groups.get(sig);
    if (g) g.items.push(it);
    else groups.set(sig, { columns, items: [it] });
  }
  return [...groups.values()];
}

export function keyOf(row: Row, key: readonly string[]): string {
  if (key.length === 1) {
    const v = normalizeKeyPart(row[key[0] as string]);
    return typeof v === 'string' ? `s${v}` : JSON.stringify(v);
  }
  return JSON.stringify(key.map((k) => normalizeKeyPart(row[k])));
}

function normalizeKeyPart(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return String(v);
  return v;
}

export function asKeyList(key: string | string[] | undefined): string[] {
  if (key === undefined) return [];
  return Array.isArray(key) ? key : [key];
}

/** Greater than, for version values of one column (numbers, dates, strings as the database gave them). */
export function versionGreater(a: unknown, b: unknown): boolean {
  if (a === null || a === undefined) return false;
  if (b === null || b === undefined) return true;
  const x = a instanceof Date ? a.getTime() : a;
  const y = b instanceof Date ? b.getTime() : b;
  if (typeof x === 'number' && typeof y === 'number') return x > y;
  if (typeof x === 'bigint' || typeof y === 'bigint') return BigInt(x as number) > BigInt(y as number);
  const nx = Number(x);
  const ny = Number(y);
  if (typeof x === 'string' && typeof y === 'string' && x.trim() !== '' && y.trim() !== '' && !Number.isNaN(nx) && !Number.isNaN(ny)) return nx > ny;
  const dx = Date.parse(String(x));
  const dy = Date.parse(String(y));
  if (!Number.isNaN(dx) && !Number.isNaN(dy) && dx !== dy) return dx > dy;
  return String(x) > String(y);
}

/** Strips a connection URL's password for logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');
}
