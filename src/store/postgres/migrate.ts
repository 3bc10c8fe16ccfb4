import type pg from 'pg';
import { IxError } from '../../core/errors.js';
import type { Migration } from '../migrations.js';
import { createPool, resolveConnection, storeError, type PostgresConnectionOptions, type ResolvedConnection } from './connection.js';
import { postgresMigrations } from './migrations.js';

export interface MigrationReport {
  readonly schema: string;
  /** Schema version before. */
  readonly from: number;
  /** Schema version after. */
  readonly to: number;
  /** The migrations applied now, in order. */
  readonly applied: readonly { version: number; name: string }[];
}

/**
 * Applies pending migrations in order, each in its own transaction, all under one advisory
 * lock on the schema held by this connection, so workers starting together migrate once (one
 * of them applies every pending migration; the others find none left). Refuses a database whose
 * schema is newer than this code (`IX_STORE_TOO_NEW`): an old worker never writes to a
 * schema it does not understand.
 */
export async function migrateSchema(
  pool: pg.Pool,
  schema: string,
  migrations: readonly Migration[] = postgresMigrations,
): Promise<MigrationReport> {
  const known = migrations.reduce((m, x) => Math.max(m, x.version), 0);
  const applied: { version: number; name: string }[] = [];
  let from: number | undefined;
  let current = 0;
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  const client = await pool.connect().catch((err: unknown) => {
    throw storeError(err);
  });
  const lock = `interchange:migrate:${schema}`;
  let locked = false;
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [lock]);
    locked = true;
    for (let i = 0; i <= sorted.length; i++) {
      const m = sorted[i];
      await client.query('BEGIN');
      try {
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${schema}.ix_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
        );
        const r = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${schema}.ix_migrations`);
        current = r.rows[0]?.v ?? 0;
        from ??= current;
        if (current > known) throw new IxError('IX_STORE_TOO_NEW', { found: current, known });
        if (m && m.version > current) {
          await client.query(`SET LOCAL search_path TO ${schema}`);
          await client.query(m.sql);
          await client.query(`INSERT INTO ${schema}.ix_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
          applied.push({ version: m.version, name: m.name });
          current = m.version;
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    }
  } catch (err) {
    throw storeError(err);
  } finally {
    // a connection that cannot unlock is dropped, which releases the lock with the session
    const unlocked = locked ? await client.query('SELECT pg_advisory_unlock(hashtext($1))', [lock]).then(() => true, () => false) : true;
    client.release(!unlocked);
  }
  return { schema, from: from ?? 0, to: current, applied };
}

/** Reads the schema's version without changing anything (0: not migrated). */
export async function schemaVersion(pool: pg.Pool, schema: string): Promise<number> {
  try {
    const exists = await pool.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${schema}.ix_migrations`]);
    if (!exists.rows[0]?.t) return 0;
    const r = await pool.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${schema}.ix_migrations`);
    return r.rows[0]?.v ?? 0;
  } catch (err) {
    throw storeError(err);
  }
}

/**
 * `ix migrate`: brings the store at `url` up to this engine's schema and reports what it did.
 * Safe to run while workers are up (each migration is one transaction) and idempotent.
 */
export async function migratePostgres(options: PostgresConnectionOptions): Promise<MigrationReport> {
  const c: ResolvedConnection = resolveConnection(options);
  const pool = createPool(c, 1);
  try {
    return await migrateSchema(pool, c.schema);
  } finally {
    await pool.end();
  }
}
