import { randomUUID } from 'node:crypto';
import type { Source, SourceContext } from '../../core/component.js';
import { createMessage } from '../../core/message.js';
import { DeliveryPump, backoffOf, childSignal, decodePayload, redactUrl, runWithReconnect } from '../broker-kit.js';
import { connectRedis } from './client.js';
import type { PubSubSourceConfig } from './config.js';

/**
 * Subscribes to channels and patterns. Redis pub/sub keeps nothing: a message published while
 * no one listens, or one whose batch could not settle, is gone (at most once). Use a stream
 * where every message counts.
 */
export class RedisPubSubSource implements Source {
  private pump: DeliveryPump | undefined;
  private stopClient: (() => void) | undefined;

  constructor(private readonly c: PubSubSourceConfig) {
    if (c.channels.length === 0 && c.patterns.length === 0) throw new TypeError('redis-pubsub: give at least one channel or pattern');
  }

  async run(ctx: SourceContext): Promise<void> {
    const c = this.c;
    const logger = ctx.logger.child({ channels: c.channels, patterns: c.patterns });
    await runWithReconnect({ signal: ctx.signal, clock: ctx.clock, logger, backoff: backoffOf(c), what: `redis ${redactUrl(c.url)}` }, async (healthy) => {
      const r = connectRedis(c.url, `ix:${ctx.name}`);
      const lost = childSignal(ctx.signal);
      r.on('error', () => undefined);
      r.on('end', () => lost.abort(new Error('connection closed')));
      this.stopClient = () => r.disconnect();
      const pump = new DeliveryPump(ctx, { logger });
      this.pump = pump;
      const onMessage = (channel: Buffer, body: Buffer, pattern?: Buffer): void => {
        const decoded = decodePayload(body, c.format);
        pump.push({
          message: createMessage({
            id: `redis-pubsub:${randomUUID()}`,
            payload: decoded.payload,
            meta: { source: 'redis-pubsub', channel: channel.toString('utf8'), ...(pattern ? { pattern: pattern.toString('utf8') } : {}) },
            ...(decoded.error !== undefined ? { error: decoded.error } : {}),
          }),
          ack: () => undefined,
          nack: () => logger.warn({ channel: channel.toString('utf8') }, 'redis-pubsub: a message could not settle and cannot be redelivered'),
        });
      };
      r.on('messageBuffer', (channel: Buffer, body: Buffer) => onMessage(channel, body));
      r.on('pmessageBuffer', (pattern: Buffer, channel: Buffer, body: Buffer) => onMessage(channel, body, pattern));
      try {
        await r.connect();
        if (c.channels.length > 0) await r.subscribe(...c.channels);
        if (c.patterns.length > 0) await r.psubscribe(...c.patterns);
        healthy();
        await pump.pump(lost.signal);
        if (ctx.signal.aborted) return;
        throw new Error('connection lost');
      } finally {
        this.pump = undefined;
        r.disconnect();
      }
    });
  }

  async close(): Promise<void> {
    this.pump?.abandonPending();
    this.stopClient?.();
  }
}
