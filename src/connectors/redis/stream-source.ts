import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Source, SourceContext } from '../../core/component.js';
import { errorMessage } from '../../core/errors.js';
import { createMessage, type Message } from '../../core/message.js';
import { parseDuration } from '../../core/units.js';
import { DeliveryPump, backoffOf, childSignal, decodePayload, decodeText, exceededError, redactUrl, runWithReconnect, type Decoded, type Delivery } from '../broker-kit.js';
import { connectRedis, text, type Bulk, type StreamEntry } from './client.js';
import type { StreamSourceConfig } from './config.js';

/** Fields with a meaning of their own; every other field of an entry becomes a header. */
export const PAYLOAD_FIELD = 'payload';
export const ID_FIELD = 'ix-id';
export const KEY_FIELD = 'ix-key';

/** How this connection settles one entry. */
interface EntryConn {
  ack(d: EntryDelivery): Promise<void>;
  nack(d: EntryDelivery): Promise<void>;
}

/** A delivery of one stream entry (a class: no closures allocated per entry). */
class EntryDelivery implements Delivery {
  constructor(
    readonly entryId: string,
    readonly message: Message,
    readonly deliveries: number,
    private readonly conn: EntryConn,
  ) {}
  ack(): Promise<void> {
    return this.conn.ack(this);
  }
  nack(): Promise<void> {
    return this.conn.nack(this);
  }
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
    // replies as strings (cheaper than a Buffer per field) unless the payload is raw bytes
    const bytes = c.format === 'bytes';
    const read = (client: Redis, command: string, ...args: (string | number)[]): Promise<unknown> => (bytes ? client.callBuffer(command, ...args) : client.call(command, ...args));
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

        // one pair of settle functions per connection, not two closures per entry
        const conn: EntryConn = {
          ack: async (d) => {
            await w.call('XACK', c.stream, c.group, d.entryId);
          },
          nack: async (d) => {
            await ctx.clock.sleep(retryDelay, lost.signal).catch(() => undefined);
            if (lost.signal.aborted) return;
            const claimed = (await read(w, 'XCLAIM', c.stream, c.group, this.consumer, 0, d.entryId)) as StreamEntry[];
            for (const e of claimed) toDelivery(e, d.deliveries + 1);
          },
        };
        const toDelivery = (entry: StreamEntry, deliveries: number): void => {
          const entryId = text(entry[0]);
          const flat = entry[1];
          let idField: Bulk | undefined;
          let keyField: Bulk | undefined;
          let body: Bulk | undefined;
          let headers: Record<string, string> = {};
          if (flat !== null) {
            for (let i = 0; i + 1 < flat.length; i += 2) {
              const k = text(flat[i] as Bulk);
              const v = flat[i + 1] as Bulk;
              if (k === PAYLOAD_FIELD) body = v;
              else if (k === ID_FIELD) idField = v;
              else if (k === KEY_FIELD) keyField = v;
              else headers[k] = text(v);
            }
          }
          let decoded: Decoded;
          if (flat === null) decoded = { payload: null, error: `stream entry ${entryId} was deleted before it was acknowledged` };
          else if (body === undefined) {
            // no payload field: the entry's fields are the payload
            const payload: Record<string, string> = {};
            for (let i = 0; i + 1 < flat.length; i += 2) payload[text(flat[i] as Bulk)] = text(flat[i + 1] as Bulk);
            decoded = { payload };
            headers = {};
          } else decoded = typeof body === 'string' ? decodeText(body, c.format) : decodePayload(body, c.format);
          let error = decoded.error;
          if (error === undefined && deliveries > c.maxDeliveries) error = exceededError(deliveries, c.maxDeliveries);
          const msg = createMessage({
            id: idField !== undefined ? text(idField) : `${c.stream}:${entryId}`,
            payload: decoded.payload,
            headers,
            meta: { source: 'redis-stream', stream: c.stream, entryId, deliveries },
            ...(keyField !== undefined ? { key: text(keyField) } : {}),
            ...(error !== undefined ? { error } : {}),
          });
          pump.push(new EntryDelivery(entryId, msg, deliveries, conn));
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
              const res = (await read(r, 'XAUTOCLAIM', c.stream, c.group, this.consumer, claimIdle, cursor, 'COUNT', c.count)) as [Bulk, StreamEntry[]];
              cursor = text(res[0]);
              // never our own entries still in flight (their keep-alive was late): they settle here
              const mine = new Set(pump.heldDeliveries().map((d) => d.entryId));
              const entries = res[1].filter((e) => e !== null && !mine.has(text(e[0])));
              if (entries.length > 0) {
                const counts = await pendingCounts(w, c.stream, c.group, this.consumer, entries, mine.size);
                for (const e of entries) toDelivery(e, counts.get(text(e[0])) ?? 2);
              }
            }
            const res = (await read(r, 'XREADGROUP', 'GROUP', c.group, this.consumer, 'COUNT', c.count, 'BLOCK', blockMs, 'STREAMS', c.stream, '>')) as
              | [Bulk, StreamEntry[]][]
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
  const ids = entries.map((e) => text(e[0]));
  const first = ids[0] as string;
  const last = ids[ids.length - 1] as string;
  const rows = (await r.call('XPENDING', stream, group, first, last, ids.length + holding, consumer)) as [string, string, number, number][];
  return new Map(rows.map((row) => [row[0], Number(row[3])]));
}
