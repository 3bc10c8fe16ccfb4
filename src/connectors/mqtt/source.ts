import type * as Mqtt from 'mqtt';
import type { IClientOptions, IPublishPacket, MqttClient, Packet } from 'mqtt';
import { lazyModule } from '../../core/lazy-module.js';
import type { Source, SourceContext } from '../../core/component.js';
import { errorMessage } from '../../core/errors.js';
import { createMessage } from '../../core/message.js';
import { parseDuration } from '../../core/units.js';
import { DeliveryCounter, DeliveryPump, backoffOf, childSignal, decodePayload, digestId, exceededError, redactUrl, runWithReconnect } from '../broker-kit.js';
import { SESSION_TAKEN_OVER, SessionSlots, TakeoverWatch, defaultClientId, sharedOnly } from './client-id.js';
import type { MqttSourceConfig } from './config.js';

const mqtt = lazyModule<typeof Mqtt>('mqtt');

/** What a user can do about a session takeover, by how the client id was chosen. */
function takeoverHint(c: MqttSourceConfig, slotted: boolean): string {
  if (slotted) return 'an engine that does not share this store leased the same session slot: the workers of one $share subscription should share one store';
  if (c.clientId === undefined) return 'several engines run this flow with the default clientId (ix-FLOW) without sharing a store: share one store (one leader then runs the flow) or give each its own clientId';
  return 'each client needs an id of its own: with several workers, make clientId differ per worker, e.g. with ${env.HOSTNAME} in it';
}

type SendPacket = (packet: Packet, cb?: (err?: Error) => void, cbStorePut?: () => void, noStore?: boolean) => void;

/**
 * Subscribes with a persistent session. For QoS 1 and 2 the acknowledgement the broker waits
 * for (PUBACK, PUBREC) is held back until the message's batch settled: a crash before that
 * leaves the message in the session and the broker delivers it again on reconnect. MQTT has
 * no negative ack, so a batch that cannot settle ends the session after `retryDelay` and the
 * reconnect redelivers what is unacknowledged. Redeliveries are counted in the store, so
 * maxDeliveries holds across engine crashes.
 */
export class MqttSource implements Source {
  private client: MqttClient | undefined;
  private pump: DeliveryPump | undefined;
  private readonly counter = new DeliveryCounter();

  constructor(private readonly c: MqttSourceConfig) {}

  async run(ctx: SourceContext): Promise<void> {
    const c = this.c;
    const retryDelay = parseDuration(c.retryDelay);
    // Unset, the id is `ix-FLOW`: stable, so a restart resumes the persistent session. A source on
    // every worker (only `$share/` topics) leases a session slot of its own instead (SessionSlots).
    const slots = c.clientId === undefined && sharedOnly(c.topics) ? new SessionSlots(ctx.store, ctx.owner, defaultClientId(ctx.flow), ctx.logger) : undefined;
    const watch = new TakeoverWatch(ctx.clock);
    const reconnect = { signal: ctx.signal, clock: ctx.clock, logger: ctx.logger.child({ topics: c.topics }), backoff: backoffOf(c), what: `mqtt ${redactUrl(c.url)}` };
    await runWithReconnect(reconnect, async (healthy) => {
      const clientId = slots ? await slots.claim() : (c.clientId ?? defaultClientId(ctx.flow));
      const logger = ctx.logger.child({ topics: c.topics, clientId });
      const countKey = (id: string): string => `mqtt-deliveries:${clientId}:${id}`;
      const lost = childSignal(ctx.signal);
      const pump = new DeliveryPump(ctx, { logger });
      this.pump = pump;
      const opts: IClientOptions = {
        clientId,
        clean: c.clean,
        protocolVersion: c.protocolVersion,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        ...(c.username !== undefined ? { username: c.username } : {}),
        ...(c.password !== undefined ? { password: c.password } : {}),
        ...(c.protocolVersion === 5 ? { properties: { sessionExpiryInterval: Math.round(parseDuration(c.sessionExpiry) / 1000) } } : {}),
      };
      let client: MqttClient | undefined;
      const keeping = slots?.keep((err) => lost.abort(err));
      try {
        // handlers go in before the connection opens: a resumed session redelivers right after CONNACK
        client = mqtt().connect(c.url, opts);
        this.client = client;
        const cl = client;
        let up = false;
        const connected = new Promise<void>((resolve, reject) => {
          cl.once('connect', () => {
            up = true;
            resolve();
          });
          cl.once('error', reject);
          cl.once('close', () => reject(new Error('connection closed')));
        });
        cl.on('error', () => undefined);
        const hint = takeoverHint(c, slots !== undefined);
        cl.on('disconnect', (packet) => {
          if (packet.reasonCode !== SESSION_TAKEN_OVER) return;
          if (watch.reported()) logger.warn({ hint }, `mqtt: session taken over: another client connected with this clientId${slots ? '; moving to another session slot' : ''}`);
          slots?.takenOver();
          lost.abort(new Error(`session taken over by another client with clientId ${clientId}`));
        });
        cl.on('close', () => {
          // closed by the broker (not by this source, which aborts `lost` first) after it was up
          if (up && !lost.signal.aborted && watch.dropped()) {
            logger.warn({ hint }, 'mqtt: session taken over, most likely: the broker keeps closing this connection without a reason while reconnects succeed');
          }
          lost.abort(new Error('connection closed'));
        });
        // hold PUBACK / PUBREC until the flow settled the message; let the client read on
        const held = new Set<number>();
        const send = (cl as unknown as { _sendPacket: SendPacket })._sendPacket.bind(cl);
        (cl as unknown as { _sendPacket: SendPacket })._sendPacket = (packet, cb, cbStorePut, noStore) => {
          const mid = (packet as { messageId?: number }).messageId;
          if ((packet.cmd === 'puback' || packet.cmd === 'pubrec') && mid !== undefined && held.has(mid)) {
            held.delete(mid);
            pendingAcks.set(mid, packet);
            cb?.();
            return;
          }
          send(packet, cb, cbStorePut, noStore);
        };
        const pendingAcks = new Map<number, Packet>();
        const ackNow = (mid: number): void => {
          const p = pendingAcks.get(mid);
          if (p && cl.connected) {
            pendingAcks.delete(mid);
            send(p);
          }
        };
        let chain: Promise<void> = Promise.resolve();
        let queued = 0;
        const deliver = (topic: string, body: Buffer, packet: IPublishPacket): void => {
          healthy();
          const props = (packet.properties?.userProperties ?? {}) as Record<string, string | string[]>;
          const headers: Record<string, string> = {};
          let id: string | undefined;
          let key: string | undefined;
          for (const [k, v] of Object.entries(props)) {
            const s = Array.isArray(v) ? (v[v.length - 1] as string) : v;
            if (k === 'ix-id') id = s;
            else if (k === 'ix-key') key = s;
            else headers[k] = s;
          }
          id ??= digestId('mqtt', topic, body, String(packet.messageId ?? ''));
          const local = this.counter.hit(id, packet.dup ? 2 : 1);
          const msgId = id;
          const push = (deliveries: number, durable: boolean): void => {
            const decoded = decodePayload(body, c.format);
            let error = decoded.error;
            if (error === undefined && packet.qos > 0 && deliveries > c.maxDeliveries) error = exceededError(deliveries, c.maxDeliveries);
            const mid = packet.messageId;
            pump.push({
              message: createMessage({
                id: msgId,
                payload: decoded.payload,
                headers,
                meta: { source: 'mqtt', topic, qos: packet.qos, retain: packet.retain, dup: packet.dup, deliveries },
                ...(key !== undefined ? { key } : {}),
                ...(error !== undefined ? { error } : {}),
              }),
              ack: () => {
                this.counter.forget(msgId);
                if (mid !== undefined && packet.qos > 0) ackNow(mid);
                if (durable) void ctx.store.deleteCheckpoint(countKey(msgId)).catch(() => undefined);
              },
              nack: async () => {
                if (packet.qos === 0) {
                  logger.warn({ topic }, 'mqtt: a QoS 0 message could not settle and cannot be redelivered');
                  return;
                }
                await ctx.clock.sleep(retryDelay).catch(() => undefined);
                // the only way to have the broker redeliver: end the session's connection
                lost.abort(new Error('redelivering unsettled messages'));
              },
            });
          };
          // MQTT brokers do not count deliveries, so a redelivery's count is kept in the store:
          // it survives an engine crash, and a poison message reaches maxDeliveries across
          // restarts. First deliveries (most messages) skip the store; order is kept.
          const redelivery = packet.qos > 0 && local > 1;
          if (!redelivery && queued === 0) {
            push(local, false);
            return;
          }
          queued++;
          chain = chain
            .then(async () => {
              if (!redelivery) return push(local, false);
              let n = local;
              try {
                const stored = Number((await ctx.store.getCheckpoint(countKey(msgId))) ?? 0);
                if (Number.isFinite(stored)) n = Math.max(local, stored + 1);
                await ctx.store.setCheckpoint(countKey(msgId), String(n));
              } catch (err) {
                logger.warn({ err: errorMessage(err) }, 'mqtt: could not record a delivery count; counting in this process only');
              }
              push(n, true);
            })
            .catch((err: unknown) => logger.warn({ err: errorMessage(err) }, 'mqtt: could not hand a message on'))
            .finally(() => {
              queued--;
            });
        };
        const opt = cl.options as { customHandleAcks?: (topic: string, message: Buffer, packet: IPublishPacket, done: (err: Error | number | null, code?: number) => void) => void };
        opt.customHandleAcks = (topic, message, packet, done) => {
          if (packet.messageId !== undefined) held.add(packet.messageId);
          if (packet.qos === 2) deliver(topic, message, packet);
          done(null, 0);
        };
        cl.on('message', (topic, message, packet) => {
          if (packet.qos !== 2) deliver(topic, message, packet);
        });
        await connected;
        const granted = await cl.subscribeAsync(c.topics, { qos: c.qos });
        for (const g of granted) if (g.qos > 2) throw new Error(`subscription to ${g.topic} was refused (code ${g.qos})`);
        logger.info({ qos: c.qos, clean: c.clean }, 'mqtt: subscribed');
        await pump.pump(lost.signal);
        if (ctx.signal.aborted) return;
        throw lost.signal.reason instanceof Error ? lost.signal.reason : new Error('connection lost');
      } finally {
        keeping?.();
        this.pump = undefined;
        this.client = undefined;
        await client?.endAsync(true).catch(() => undefined);
      }
    }).finally(() => slots?.release());
  }

  async close(): Promise<void> {
    this.pump?.abandonPending();
    await this.client?.endAsync(true).catch(() => undefined);
  }
}
