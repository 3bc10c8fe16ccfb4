import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Source, SourceContext } from '../../core/component.js';
import { errorMessage } from '../../core/errors.js';
import { createMessage } from '../../core/message.js';
import { parseDuration } from '../../core/units.js';
import { DeliveryPump, backoffOf, childSignal, decodePayload, exceededError, redactUrl, runWithReconnect, type Delivery } from '../broker-kit.js';
import { connectRedis, fieldMap, type StreamEntry } from './client.js';
import type { StreamSourceConfig } from './config.js';

/** Fields with a meaning of their own; every other field of an entry becomes a header. */
export const PAYLOAD_FIELD = 'payload';
export const ID_FIELD = 'ix-id';
export const KEY_FIELD = 'ix-key';

/** A delivery of one stream entry. */
interface EntryDelivery extends Delivery {
  readonly entryId: string;
}

/**
 * Reads a stream through a consumer group. Entries are XACKed only after their batch settled;
 * an entry whose batch did not settle is claimed again after `retryDelay` (its delivery count
 * grows); entries a crashed consumer left pending are reclaimed with XAUTOCLAIM once idle for
 * `claimIdle`; past `maxDeliveries` an entry goes to the DLQ and is acknowledged. While the
 * flow works on an entry, the consumer keeps it fresh (XCLAIM … JUSTID to itself, which resets
 * its idle time without counting a delivery), so only a dead consumer's entries are reclaimed,
 * however long a batch takes to settle.
 */
export class RedisStreamSource implements Source {
  private client: Redis | undefined;
  private pump: DeliveryPump<EntryDelivery> | undefined;
  private readonly consumer: string;

  constructor(private readonly c: StreamSourceConfig) {
    this.consumer = c.consumer ?? `${hostname()}-${process.pid}`;
  }

  async run(ctx: SourceContext): Promise<void> {
    const c = this.c;
    const logger = ctx.logger.child({ stream: c.stream, group: c.group, consumer: this.consumer });
    const retryDelay = parseDuration(c.retryDelay);
    const claimIdle = parseDuration(c.claimIdle);
    const blockMs = parseDuration(c.block);
    await runWithReconnect({ signal: ctx.signal, clock: ctx.clock, logger, backoff: backoffOf(c), what: `redis ${redactUrl(c.url)}` }, async (healthy) => {
      const r = connectRedis(c.url, `ix:${ctx.name}`);
      this.client = r;
      const lost = childSignal(ctx.signal);
      r.on('error', () => undefined);
      r.on('end', () => lost.abort(new Error('connection closed')));
      // a separate connection for acks and claims, so they do not queue behind a blocking read
      const w = connectRedis(c.url, `ix:${ctx.name}:ack`);
      w.on('error', () => undefined);
      w.on('end', () => lost.abort(new Error('connection closed')));
      const pump = new DeliveryPump<EntryDelivery>(ctx, {
        logger,
        keepAlive: {
          everyMs: claimIdle / 3,
          touch: async (held) => {
            await w.call('XCLAIM', c.stream, c.group, this.consumer, 0, ...new Set(held.map((d) => d.entryId)), 'JUSTID');
          },
        },
        ackBatch: async (batch) => {
          await w.call('XACK', c.stream, c.group, ...batch.map((d) => d.entryId));
        },
      });
      this.pump = pump;
      try {
        await Promise.all([r.connect(), w.connect()]);
        try {
          await r.call('XGROUP', 'CREATE', c.stream, c.group, c.startId, 'MKSTREAM');
        } catch (err) {
          if (!/BUSYGROUP/.test(errorMessage(err))) throw err;
        }
        healthy();

        const toDelivery = (entry: StreamEntry, deliveries: number): void => {
          const entryId = entry[0].toString('utf8');
          const fields = fieldMap(entry[1] ?? []);
          const idBuf = fields.get(ID_FIELD);
          const keyBuf = fields.get(KEY_FIELD);
          const body = fields.get(PAYLOAD_FIELD);
          const headers: Record<string, string> = {};
          for (const [k, v] of fields) if (k !== ID_FIELD && k !== KEY_FIELD && k !== PAYLOAD_FIELD) headers[k] = v.toString('utf8');
          const decoded =
            entry[1] === null
              ? { payload: null, error: `stream entry ${entryId} was deleted before it was acknowledged` }
              : body === undefined
                ? { payload: Object.fromEntries([...fields].map(([k, v]) => [k, v.toString('utf8')])) }
                : decodePayload(body, c.format);
          let error = decoded.error;
          if (error === undefined && deliveries > c.maxDeliveries) error = exceededError(deliveries, c.maxDeliveries);
          const id = idBuf !== undefined ? idBuf.toString('utf8') : `${c.stream}:${entryId}`;
          const msg = createMessage({
            id,
            payload: decoded.payload,
            headers: body === undefined ? {} : headers,
            meta: { source: 'redis-stream', stream: c.stream, entryId, deliveries },
            ...(keyBuf !== undefined ? { key: keyBuf.toString('utf8') } : {}),
            ...(error !== undefined ? { error } : {}),
          });
          pump.push({
            entryId,
            message: msg,
            ack: async () => {
              await w.call('XACK', c.stream, c.group, entryId);
            },
            nack: async () => {
              await ctx.clock.sleep(retryDelay, lost.signal).catch(() => undefined);
              if (lost.signal.aborted) return;
              const claimed = (await w.callBuffer('XCLAIM', c.stream, c.group, this.consumer, 0, entryId)) as StreamEntry[];
              for (const e of claimed) toDelivery(e, deliveries + 1);
            },
          });
        };

        const reader = (async (): Promise<void> => {
          let cursor = '0-0';
          let lastClaim = 0;
          while (!lost.signal.aborted) {
            await pump.room(c.maxInFlight, lost.signal);
            if (lost.signal.aborted) break;
            // stuck entries first: a crashed consumer's pending list, idle past claimIdle
            if (Date.now() - lastClaim >= Math.min(claimIdle, 5000) || cursor !== '0-0') {
              lastClaim = Date.now();
              const res = (await r.callBuffer('XAUTOCLAIM', c.stream, c.group, this.consumer, claimIdle, cursor, 'COUNT', c.count)) as [Buffer, StreamEntry[]];
              cursor = res[0].toString('utf8');
              // never our own entries still in flight (their keep-alive was late): they settle here
              const mine = new Set(pump.heldDeliveries().map((d) => d.entryId));
              const entries = res[1].filter((e) => e !== null && !mine.has(e[0].toString('utf8')));
              if (entries.length > 0) {
                const counts = await pendingCounts(w, c.stream, c.group, this.consumer, entries, mine.size);
                for (const e of entries) toDelivery(e, counts.get(e[0].toString('utf8')) ?? 2);
              }
            }
            const res = (await r.callBuffer('XREADGROUP', 'GROUP', c.group, this.consumer, 'COUNT', c.count, 'BLOCK', blockMs, 'STREAMS', c.stream, '>')) as
              | [Buffer, StreamEntry[]][]
              | null;
            if (res === null) continue;
            for (const [, entries] of res) for (const e of entries) toDelivery(e, 1);
          }
        })();
        reader.catch((err: unknown) => lost.abort(err));
        await pump.pump(lost.signal);
        await reader.catch(() => undefined);
        if (ctx.signal.aborted) return;
        throw lost.signal.reason instanceof Error ? lost.signal.reason : new Error('connection lost');
      } finally {
        this.pump = undefined;
        this.client = undefined;
        r.disconnect();
        w.disconnect();
      }
    });
  }

  async close(): Promise<void> {
    this.pump?.abandonPending();
    this.client?.disconnect();
  }
}

/** Delivery counts (XPENDING) of entries just claimed by `consumer`, which holds `holding` others. */
async function pendingCounts(r: Redis, stream: string, group: string, consumer: string, entries: StreamEntry[], holding: number): Promise<Map<string, number>> {
  const ids = entries.map((e) => e[0].toString('utf8'));
  const first = ids[0] as string;
  const last = ids[ids.length - 1] as string;
  const rows = (await r.call('XPENDING', stream, group, first, last, ids.length + holding, consumer)) as [string, string, number, number][];
  return new Map(rows.map((row) => [row[0], Number(row[3])]));
}
