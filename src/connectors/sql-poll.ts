/**
 * The polling source every database connector runs: reads a table in (cursor, key) order,
 * emits batches, and commits the checkpoint only after a batch's Ack.settled resolved, in
 * order. Rows that share a cursor value are told apart by the key, so none is skipped.
 */
import { Cron } from 'croner';
import type { Ack, Source, SourceContext } from '../core/component.js';
import { IxError, errorMessage } from '../core/errors.js';
import { createMessage, type Message } from '../core/message.js';
import { parseDuration } from '../core/units.js';
import type { ErrorClass, Row } from './sql-common.js';

/** A place in the (cursor, key) order; `k` null means "after every row with cursor `c`". */
export interface PollPosition {
  readonly c: unknown;
  readonly k: unknown;
}

export interface PolledRow {
  readonly row: Row;
  readonly pos: PollPosition;
}

export interface PollDriver {
  readonly db: string;
  /** Rows strictly after `after` in (cursor, key) order, at most `limit`. */
  fetch(after: PollPosition | undefined, limit: number): Promise<PolledRow[]>;
  classify(err: unknown): ErrorClass;
  reason(err: unknown): string;
  close(): Promise<void>;
}

export interface PollOptions {
  readonly table: string;
  readonly key: string;
  readonly interval?: unknown;
  readonly schedule?: string;
  readonly start?: string | number;
  readonly batchSize?: number;
  readonly maxInFlight?: number;
  readonly stopWhenCaughtUp?: boolean;
}

export function validateSchedule(schedule: string | undefined): void {
  if (schedule === undefined) return;
  try {
    new Cron(schedule, { paused: true }).stop();
  } catch (err) {
    throw new IxError('IX_SPEC_INVALID', { path: 'schedule', detail: `is not a cron expression: ${errorMessage(err)}` });
  }
}

/** Milliseconds from `now` until the next poll once caught up. */
export function nextPollDelay(options: Pick<PollOptions, 'interval' | 'schedule'>, now: number): number {
  if (options.schedule) {
    const cron = new Cron(options.schedule, { paused: true });
    const next = cron.nextRun(new Date(now));
    cron.stop();
    return next ? Math.max(0, next.getTime() - now) : 60_000;
  }
  return parseDuration((options.interval as string | number | undefined) ?? '5s');
}

interface InFlight {
  readonly ack: Ack;
  readonly pos: PollPosition;
  readonly rows: number;
}

export class PollingSource implements Source {
  /** Rows emitted and checkpoints committed, for tests and metrics. */
  readonly stats = { polls: 0, emitted: 0, committed: 0, rewinds: 0, errors: 0 };

  constructor(
    private readonly driver: PollDriver,
    private readonly options: PollOptions,
  ) {
    validateSchedule(options.schedule);
  }

  async run(ctx: SourceContext): Promise<void> {
    const o = this.options;
    const limit = o.batchSize ?? ctx.batchSize;
    const maxInFlight = o.maxInFlight ?? 4;
    const saved = await ctx.checkpoint.get();
    const initial: PollPosition | undefined = saved !== undefined ? (JSON.parse(saved) as PollPosition) : o.start !== undefined ? { c: o.start, k: null } : undefined;
    let committed = initial;
    let position = initial;
    const inflight: InFlight[] = [];
    let failures = 0;
    let rewound = false;

    /** Waits for the oldest batch; commits its checkpoint, or rewinds to the last commit. */
    const settleOldest = async (): Promise<void> => {
      const head = inflight.shift() as InFlight;
      try {
        await head.ack.settled;
        committed = head.pos;
        await ctx.checkpoint.set(JSON.stringify(head.pos));
        this.stats.committed += head.rows;
      } catch (err) {
        // The flow could not promise delivery: read again from the last committed position.
        ctx.logger.warn({ table: o.table, reason: errorMessage(err) }, 'batch not settled; reading again from the last checkpoint');
        this.stats.rewinds++;
        await Promise.allSettled(inflight.map((f) => f.ack.settled));
        inflight.length = 0;
        position = committed;
        rewound = true;
      }
    };

    try {
      while (!ctx.signal.aborted) {
        let rows: PolledRow[];
        try {
          this.stats.polls++;
          rows = await this.driver.fetch(position, limit);
          failures = 0;
        } catch (err) {
          const cls = this.driver.classify(err);
          this.stats.errors++;
          if (cls === 'fatal') throw new IxError('IX_DB_STATEMENT', { db: this.driver.db, detail: this.driver.reason(err) }, { cause: err });
          failures++;
          const delay = Math.min(30_000, 250 * 2 ** Math.min(failures, 7));
          ctx.logger.warn({ table: o.table, delayMs: delay, reason: this.driver.reason(err) }, 'poll failed; retrying');
          if (!(await sleep(ctx, delay))) break;
          continue;
        }
        if (rows.length > 0) {
          const batch = rows.map((r) => this.toMessage(r));
          let ack: Ack;
          try {
            ack = await ctx.emit(batch);
          } catch (err) {
            if (ctx.signal.aborted) break; // shutdown: the rows stay after the checkpoint
            throw err;
          }
          const last = (rows[rows.length - 1] as PolledRow).pos;
          position = last;
          this.stats.emitted += rows.length;
          inflight.push({ ack, pos: last, rows: rows.length });
        }
        while (inflight.length >= maxInFlight) await settleOldest();
        if (rows.length < limit) {
          // Caught up: settle what is in flight before sleeping, so the checkpoint is current.
          while (inflight.length > 0) await settleOldest();
          if (rewound) {
            rewound = false;
            continue; // read again at once from the last checkpoint
          }
          if (o.stopWhenCaughtUp) return;
          if (!(await sleep(ctx, nextPollDelay(o, ctx.clock.now())))) break;
        }
      }
      // Shutdown: give in-flight batches their chance to settle and commit.
      while (inflight.length > 0) await settleOldest();
    } finally {
      await this.driver.close();
    }
  }

  private toMessage(r: PolledRow): Message {
    const k = r.row[this.options.key];
    const c = r.pos.c;
    const id = `${this.options.table}:${String(k)}@${String(c instanceof Date ? c.toISOString() : c)}`;
    return createMessage({ id, key: String(k), payload: r.row, meta: { table: this.options.table, cursor: c } });
  }
}

async function sleep(ctx: SourceContext, ms: number): Promise<boolean> {
  try {
    await ctx.clock.sleep(ms, ctx.signal);
    return true;
  } catch {
    return false;
  }
}
