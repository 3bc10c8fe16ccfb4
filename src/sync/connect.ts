/**
 * Opens what a sync stream reads from and writes to, through the database connectors'
 * drivers (their client libraries load only when a spec uses them).
 */
import { isAbsolute, resolve } from 'node:path';
import type { Logger } from '../core/logger.js';
import type { SqlDriver } from '../connectors/sql-common.js';
import type { PollDriver } from '../connectors/sql-poll.js';
import type { WriteSqlBuilder } from '../connectors/sql-sink.js';
import type { ComponentSpec } from '../spec/types.js';

export interface TargetConnection {
  readonly driver: SqlDriver;
  readonly build: WriteSqlBuilder;
  /** Names the database without secrets: the same table read and written has one identity. */
  readonly identity: string;
}

interface SqlConfig {
  readonly url?: string;
  readonly path?: string;
  readonly maxConnections?: number;
}

/** `kind:host/db` (no user, no password): how two streams agree they touch the same table. */
export function databaseIdentity(kind: string, cfg: SqlConfig, baseDir: string): string {
  if (cfg.path) return `${kind}:${isAbsolute(cfg.path) ? cfg.path : resolve(baseDir, cfg.path)}`;
  try {
    const u = new URL(cfg.url ?? '');
    return `${kind}:${u.hostname}:${u.port}${u.pathname}`;
  } catch {
    return `${kind}:${cfg.url ?? ''}`;
  }
}

export async function openTarget(spec: ComponentSpec, baseDir: string, logger: Logger): Promise<TargetConnection> {
  const cfg = spec.config as SqlConfig;
  const identity = databaseIdentity(spec.kind, cfg, baseDir);
  switch (spec.kind) {
    case 'postgres': {
      const { createPgPool, PgDriver, pgWriteSql } = await import('../connectors/postgres/driver.js');
      const pool = createPgPool({ url: cfg.url as string, maxConnections: cfg.maxConnections ?? 4, logger, applicationName: 'interchange-sync' });
      return { driver: new PgDriver(pool), build: pgWriteSql, identity };
    }
    case 'mysql': {
      const { createMysqlPool, MysqlDriver, mysqlWriteSql } = await import('../connectors/mysql/driver.js');
      const pool = createMysqlPool({ url: cfg.url as string, maxConnections: cfg.maxConnections ?? 4, logger });
      return { driver: new MysqlDriver(pool), build: mysqlWriteSql, identity };
    }
    case 'sqlite': {
      const { SqliteDriver, sqliteWriteSql } = await import('../connectors/sqlite/driver.js');
      return { driver: SqliteDriver.open(resolve(baseDir, cfg.path as string)), build: sqliteWriteSql, identity };
    }
    default:
      throw new TypeError(`unknown sync target kind "${spec.kind}"`);
  }
}

export interface PollSpec {
  readonly table: string;
  readonly cursor: string;
  readonly key: string;
  readonly columns?: string[];
  readonly where?: string;
}

/** A table reader in (cursor, key) order. */
export async function openTableReader(spec: ComponentSpec, poll: PollSpec, baseDir: string, logger: Logger): Promise<PollDriver & { readonly dialectName: string }> {
  const cfg = spec.config as SqlConfig;
  const o = { ...poll };
  switch (spec.kind) {
    case 'postgres': {
      const { createPgPool, PgDriver } = await import('../connectors/postgres/driver.js');
      const d = new PgDriver(createPgPool({ url: cfg.url as string, maxConnections: 1, logger, applicationName: 'interchange-sync' })).forPolling(o);
      return Object.assign(d, { dialectName: 'postgres' });
    }
    case 'mysql': {
      const { createMysqlPool, MysqlDriver } = await import('../connectors/mysql/driver.js');
      const d = new MysqlDriver(createMysqlPool({ url: cfg.url as string, maxConnections: 1, logger })).forPolling(o);
      return Object.assign(d, { dialectName: 'mysql' });
    }
    case 'sqlite': {
      const { SqliteDriver } = await import('../connectors/sqlite/driver.js');
      const d = SqliteDriver.open(resolve(baseDir, cfg.path as string)).forPolling(o);
      return Object.assign(d, { dialectName: 'sqlite' });
    }
    default:
      throw new TypeError(`unknown sync source kind "${spec.kind}"`);
  }
}

/**
 * The target connections of one job run: streams writing to the same database with the same
 * settings share one pool, so `maxConnections` bounds the job's streams together.
 */
export class TargetPool {
  private readonly conns = new Map<string, Promise<TargetConnection>>();

  constructor(
    private readonly baseDir: string,
    private readonly logger: Logger,
  ) {}

  get(spec: ComponentSpec): Promise<TargetConnection> {
    const k = `${spec.kind}\0${JSON.stringify(spec.config)}`;
    let c = this.conns.get(k);
    if (!c) {
      c = openTarget(spec, this.baseDir, this.logger);
      c.catch(() => this.conns.delete(k));
      this.conns.set(k, c);
    }
    return c;
  }

  async close(): Promise<void> {
    const all = [...this.conns.values()];
    this.conns.clear();
    for (const c of all) await c.then((x) => x.driver.close()).catch(() => undefined);
  }
}
