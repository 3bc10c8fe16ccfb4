import type * as LogicalReplication from 'pg-logical-replication';
import type { Pgoutput } from 'pg-logical-replication';
import type pg from 'pg';
import type { Ack, Source, SourceContext } from '../../core/component.js';
import { IxError, errorMessage } from '../../core/errors.js';
import { createMessage, type Message } from '../../core/message.js';
import type { PostgresCdcConfig } from './cdc-source.js';
import { pgDialect, pgReason } from './driver.js';
import { lazyModule } from '../../core/lazy-module.js';

const pgModule = lazyModule<typeof pg>('pg');
const logicalReplication = lazyModule<typeof LogicalReplication>('pg-logical-replication');

type Config = PostgresCdcConfig;

/** One row change as it travels in a message payload. */
export interface ChangeEvent {
  readonly op: 'insert' | 'update' | 'delete' | 'truncate';
  readonly schema: string;
  readonly table: string;
  /** The row after an insert or update. */
  readonly new: Record<string, unknown> | null;
  /** The row (or its key columns) before an update or delete, as the replica identity gives it. */
  readonly old: Record<string, unknown> | null;
  /** `new`, or `old` for a delete: map sink columns from `row.*` to handle every operation. */
  readonly row: Record<string, unknown> | null;
  readonly commitLsn: string;
  readonly commitTime: string;
  readonly xid: number;
}

interface Pending {
  readonly msg: Message;
  /** Set on a transaction's last change: acknowledging it confirms the whole transaction. */
  readonly ackLsn?: string;
}

function lsnToBig(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi ?? '0'}`) << 32n) + BigInt(`0x${lo ?? '0'}`);
}

/** Checks the server and creates the publication and slot when missing; returns the slot's confirmed position. */
export async function prepareCdc(config: Config): Promise<string> {
  const client = new (pgModule().Client)({ connectionString: config.url, application_name: 'interchange-cdc-setup' });
  await client.connect();
  try {
    const wal = (await client.query<{ wal_level: string }>('SHOW wal_level')).rows[0]?.wal_level;
    if (wal !== 'logical') {
      throw new IxError('IX_DB_CDC_UNAVAILABLE', {
        detail: `the server runs with wal_level = ${wal}; logical replication needs wal_level = logical (ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)`,
      });
    }
    const pub = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [config.publication]);
    if (pub.rowCount === 0) {
      if (!config.tables) {
        throw new IxError('IX_DB_CDC_UNAVAILABLE', { detail: `publication "${config.publication}" does not exist: create it or list \`tables\`` });
      }
      const list = config.tables.map((t) => t.split('.').map(pgDialect.quote).join('.')).join(', ');
      await client.query(`CREATE PUBLICATION ${pgDialect.quote(config.publication)} FOR TABLE ${list}`);
    }
    const slot = await client.query<{ plugin: string; lsn: string | null }>(
      'SELECT plugin, confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1',
      [config.slot],
    );
    if (slot.rowCount === 0) {
      const made = await client.query<{ lsn: string }>("SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')", [config.slot]);
      return made.rows[0]?.lsn ?? '0/0';
    }
    const row = slot.rows[0] as { plugin: string; lsn: string | null };
    if (row.plugin !== 'pgoutput') {
      throw new IxError('IX_DB_CDC_UNAVAILABLE', { detail: `slot "${config.slot}" uses plugin ${row.plugin}, not pgoutput` });
    }
    return row.lsn ?? '0/0';
  } catch (err) {
    if (err instanceof IxError) throw err;
    const code = (err as { code?: string }).code ?? '';
    if (code === '42501') throw new IxError('IX_DB_CDC_UNAVAILABLE', { detail: `the role lacks the REPLICATION privilege: ${pgReason(err)}` }, { cause: err });
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export class PostgresCdcSource implements Source {
  readonly stats = { changes: 0, transactions: 0, acknowledged: '0/0', reconnects: 0 };
  constructor(private readonly config: Config) {}

  /** Creates the publication and the slot now: every change from here on is streamed. */
  async prepare(): Promise<void> {
    await prepareCdc(this.config);
  }

  async run(ctx: SourceContext): Promise<void> {
    const limit = this.config.batchSize ?? ctx.batchSize;
    const linger = this.config.linger ?? 50;
    let failures = 0;
    while (!ctx.signal.aborted) {
      let confirmed: string;
      try {
        confirmed = await prepareCdc(this.config);
      } catch (err) {
        if (err instanceof IxError && !err.retryable) throw err;
        if (!(await this.backoff(ctx, ++failures, err))) return;
        continue;
      }
      const outcome = await this.stream(ctx, confirmed, limit, linger);
      if (outcome === 'stopped') return;
      this.stats.reconnects++;
      if (!(await this.backoff(ctx, ++failures, outcome))) return;
    }
  }

  private async backoff(ctx: SourceContext, failures: number, err: unknown): Promise<boolean> {
    const delay = Math.min(30_000, 250 * 2 ** Math.min(failures, 7));
    ctx.logger.warn({ slot: this.config.slot, delayMs: delay, reason: pgReason(err) }, 'replication stream failed; reconnecting');
    try {
      await ctx.clock.sleep(delay, ctx.signal);
      return true;
    } catch {
      return false;
    }
  }

  /** One replication connection, until it fails (returns the error) or the signal stops it. */
  private async stream(ctx: SourceContext, confirmed: string, limit: number, linger: number): Promise<'stopped' | Error> {
    const service = new (logicalReplication().LogicalReplicationService)(
      { connectionString: this.config.url, application_name: 'interchange-cdc' },
      // Never acknowledge what was merely received: only what settled.
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
    );
    const plugin = new (logicalReplication().PgoutputPlugin)({ protoVersion: 1, publicationNames: [this.config.publication] });
    let acked = confirmed;
    let failure: Error | undefined;
    let tx: { begin: Pgoutput.MessageBegin; changes: Message[] } | undefined;
    let pending: Pending[] = [];
    let timer: NodeJS.Timeout | undefined;
    let emitting: Promise<void> = Promise.resolve();
    let acks: Promise<void> = Promise.resolve();

    const fail = (err: Error): void => {
      if (!failure) failure = err;
      void service.stop();
    };

    const settleInOrder = (ack: Ack, lsn: string | undefined): void => {
      acks = acks.then(async () => {
        if (failure) return;
        try {
          await ack.settled;
        } catch (err) {
          // Not delivered for sure: drop the connection and stream again from the slot.
          fail(new Error(`batch not settled: ${errorMessage(err)}`));
          return;
        }
        if (!lsn || lsnToBig(lsn) <= lsnToBig(acked)) return;
        acked = lsn;
        await service.acknowledge(lsn);
        this.stats.acknowledged = lsn;
        await ctx.checkpoint.set(lsn);
      });
    };

    const flush = (): Promise<void> => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      emitting = emitting.then(async () => {
        while (pending.length > 0 && !failure) {
          const chunk = pending.slice(0, limit);
          pending = pending.slice(chunk.length);
          let lsn: string | undefined;
          for (const p of chunk) if (p.ackLsn) lsn = p.ackLsn;
          try {
            settleInOrder(await ctx.emit(chunk.map((p) => p.msg)), lsn);
          } catch (err) {
            fail(err as Error);
          }
        }
      });
      return emitting;
    };

    service.on('data', async (_lsn: string, m: Pgoutput.Message) => {
      if (m.tag === 'begin') {
        tx = { begin: m, changes: [] };
        return;
      }
      if (!tx) return;
      if (m.tag === 'insert' || m.tag === 'update' || m.tag === 'delete') {
        const r = m.relation;
        const row = m.tag === 'delete' ? (m.old ?? m.key) : m.new;
        const keyVals = r.keyColumns.map((k) => (row ? row[k] : undefined));
        const ev: ChangeEvent = {
          op: m.tag,
          schema: r.schema,
          table: r.name,
          new: m.tag === 'delete' ? null : m.new,
          old: m.tag === 'insert' ? null : (m.old ?? m.key),
          row: m.tag === 'delete' ? (m.old ?? m.key) : m.new,
          commitLsn: tx.begin.commitLsn ?? '0/0',
          commitTime: new Date(Number(tx.begin.commitTime) / 1000).toISOString(),
          xid: tx.begin.xid,
        };
        const msg = createMessage({
          id: `${this.config.slot}:${ev.commitLsn}:${tx.changes.length}`,
          payload: ev,
          meta: { table: `${r.schema}.${r.name}`, op: m.tag, lsn: ev.commitLsn },
        });
        if (keyVals.length > 0 && keyVals.every((v) => v !== undefined && v !== null)) msg.key = keyVals.map(String).join(':');
        tx.changes.push(msg);
      } else if (m.tag === 'truncate') {
        for (const r of m.relations) {
          const ev: ChangeEvent = {
            op: 'truncate',
            schema: r.schema,
            table: r.name,
            new: null,
            old: null,
            row: null,
            commitLsn: tx.begin.commitLsn ?? '0/0',
            commitTime: new Date(Number(tx.begin.commitTime) / 1000).toISOString(),
            xid: tx.begin.xid,
          };
          tx.changes.push(createMessage({ id: `${this.config.slot}:${ev.commitLsn}:${tx.changes.length}`, payload: ev, meta: { table: `${r.schema}.${r.name}`, op: 'truncate', lsn: ev.commitLsn } }));
        }
      } else if (m.tag === 'commit') {
        const end = m.commitEndLsn ?? tx.begin.commitLsn ?? '0/0';
        const changes = tx.changes;
        tx = undefined;
        this.stats.transactions++;
        this.stats.changes += changes.length;
        if (lsnToBig(end) <= lsnToBig(acked)) return; // confirmed before: replayed by the server
        if (changes.length === 0) {
          // Nothing published in this transaction: confirm it once everything before it settled.
          if (pending.length === 0) {
            const none: Ack = { settled: Promise.resolve({ outcomes: [], delivered: 0, deadLettered: 0, filtered: 0 }) };
            emitting = emitting.then(() => settleInOrder(none, end));
          }
          return;
        }
        changes.forEach((msg, i) => pending.push(i === changes.length - 1 ? { msg, ackLsn: end } : { msg }));
        if (pending.length >= limit) await flush();
        else if (!timer) timer = setTimeout(() => void flush(), linger);
      }
    });
    service.on('heartbeat', async (_lsn: string, _ts: number, shouldRespond: boolean) => {
      if (shouldRespond) await service.acknowledge(acked);
    });
    service.on('error', (err: Error) => fail(err));

    const onAbort = (): void => {
      // Drain: emit what is buffered, wait for it to settle and be acknowledged, then stop.
      void flush()
        .then(() => acks)
        .finally(() => void service.stop());
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      await service.subscribe(plugin, this.config.slot);
      if (!ctx.signal.aborted && !failure) failure = new Error('replication stream ended');
    } catch (err) {
      if (!failure) failure = err as Error;
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      if (timer) clearTimeout(timer);
      await service.destroy().catch(() => undefined);
    }
    if (ctx.signal.aborted && !failure) {
      await emitting;
      await acks;
      return 'stopped';
    }
    // Let what was emitted settle (its checkpoint may still advance) before reconnecting.
    await emitting.catch(() => undefined);
    await acks.catch(() => undefined);
    if (ctx.signal.aborted) return 'stopped';
    return failure ?? new Error('replication stream ended');
  }
}
