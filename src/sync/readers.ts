/**
 * Where pull streams read: a paginated REST endpoint (resumable at its page position) or a
 * table in (cursor, key) order (resumable at the last row). Each yields batches with the
 * position to resume after them.
 */
import type { Logger } from '../core/logger.js';
import type { Resources } from '../core/component.js';
import { paginate, type RestService } from '../connectors/http/index.js';
import { readPath } from '../connectors/http/template.js';
import { quoteTable } from '../connectors/sql-common.js';
import type { PollPosition } from '../connectors/sql-poll.js';
import type { ComponentSpec } from '../spec/types.js';
import { openTableReader } from './connect.js';

export interface ReadBatch {
  readonly records: Record<string, unknown>[];
  /** Where to resume after this batch (JSON). */
  readonly position: unknown;
  /** The source has nothing after this batch. */
  readonly done: boolean;
  /** Records the source will yield in all, when it says. */
  readonly total?: number;
}

export interface ReadRequest {
  /** Resume position from a checkpoint of this run. */
  readonly resume?: unknown;
  /** Incremental: records from this cursor on (exclusive for tables; the API's own rule for http). */
  readonly since?: unknown;
  /** Tables: resume after this exact (cursor, key) position. */
  readonly after?: PollPosition;
  /** Backfill: up to and including this cursor. */
  readonly to?: unknown;
  /** Order by cursor (incremental) or by key (full). */
  readonly byCursor: boolean;
  readonly batchSize: number;
  readonly signal: AbortSignal;
}

export interface Reader {
  read(req: ReadRequest): AsyncGenerator<ReadBatch>;
  close(): Promise<void>;
}

interface HttpFrom {
  readonly service: string;
  readonly endpoint: string;
  readonly cursorParam?: string;
  readonly toParam?: string;
  readonly query?: Record<string, unknown>;
  readonly total?: string;
}

class HttpReader implements Reader {
  constructor(
    private readonly service: RestService,
    private readonly cfg: HttpFrom,
  ) {}

  async *read(req: ReadRequest): AsyncGenerator<ReadBatch> {
    const ep = this.service.endpoint(this.cfg.endpoint);
    const query: Record<string, unknown> = { ...this.cfg.query };
    if (this.cfg.cursorParam && req.since !== undefined && req.since !== null) query[this.cfg.cursorParam] = req.since;
    if (this.cfg.toParam && req.to !== undefined) query[this.cfg.toParam] = req.to;
    let total: number | undefined;
    const start = typeof req.resume === 'string' ? req.resume : undefined;
    for await (const page of paginate(this.service, ep, { query, signal: req.signal }, { start, maxPages: 1_000_000 })) {
      if (total === undefined && this.cfg.total) {
        const t = Number(readPath(page.result.body, this.cfg.total));
        if (Number.isFinite(t)) total = t;
      }
      const records = page.items.filter((i): i is Record<string, unknown> => i !== null && typeof i === 'object' && !Array.isArray(i));
      const done = page.next === undefined;
      yield total === undefined ? { records, position: page.next, done } : { records, position: page.next, done, total };
      if (req.signal.aborted) return;
    }
  }

  async close(): Promise<void> {}
}

interface TableFrom {
  readonly table: string;
  readonly where?: string;
  readonly columns?: string[];
}

function literal(v: unknown): string {
  if (typeof v === 'number') return String(v);
  return `'${String(v).replace(/'/g, "''")}'`;
}

class TableReader implements Reader {
  constructor(
    private readonly spec: ComponentSpec,
    private readonly cursor: string | undefined,
    private readonly key: string,
    private readonly baseDir: string,
    private readonly logger: Logger,
  ) {}

  async *read(req: ReadRequest): AsyncGenerator<ReadBatch> {
    const cfg = this.spec.config as TableFrom;
    const order = req.byCursor && this.cursor ? this.cursor : this.key;
    const conds: string[] = [];
    if (cfg.where) conds.push(`(${cfg.where})`);
    if (req.to !== undefined && this.cursor) conds.push(`${this.quote(this.cursor)} <= ${literal(req.to)}`);
    const driver = await openTableReader(
      this.spec,
      { table: cfg.table, cursor: order, key: this.key, ...(cfg.columns ? { columns: cfg.columns } : {}), ...(conds.length ? { where: conds.join(' AND ') } : {}) },
      this.baseDir,
      this.logger,
    );
    try {
      let after: PollPosition | undefined = (req.resume as PollPosition | undefined) ?? req.after;
      if (!after && req.since !== undefined && req.since !== null && req.byCursor) after = { c: req.since, k: null };
      for (;;) {
        if (req.signal.aborted) return;
        const rows = await driver.fetch(after, req.batchSize);
        if (rows.length === 0) return;
        after = (rows[rows.length - 1] as { pos: PollPosition }).pos;
        yield { records: rows.map((r) => r.row), position: after, done: rows.length < req.batchSize };
        if (rows.length < req.batchSize) return;
      }
    } finally {
      await driver.close();
    }
  }

  private quote(ident: string): string {
    const q = this.spec.kind === 'mysql' ? '`' : '"';
    return quoteTable({ quote: (s: string) => q + s.split(q).join(q + q) + q } as never, ident);
  }

  async close(): Promise<void> {}
}

export function openReader(from: ComponentSpec, o: { cursor?: string; key: readonly string[]; resources: Resources; baseDir: string; logger: Logger }): Reader {
  if (from.kind === 'http') {
    const cfg = from.config as HttpFrom;
    return new HttpReader(o.resources.get<RestService>('services', cfg.service), cfg);
  }
  return new TableReader(from, o.cursor, o.key[0] as string, o.baseDir, o.logger);
}
