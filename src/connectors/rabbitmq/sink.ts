import type * as Amqp from 'amqplib';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import type { Sink, SinkContext, SinkWriteResult } from '../../core/component.js';
import { IxError, errorMessage } from '../../core/errors.js';
import type { Message } from '../../core/message.js';
import { parseDuration } from '../../core/units.js';
import { compileDestination, compileRouter, encodePayload, redactUrl } from '../broker-kit.js';
import type { RabbitSinkConfig } from './config.js';
import { assertExchange, assertQueue } from './topology.js';
import { lazyModule } from '../../core/lazy-module.js';

const amqp = lazyModule<typeof Amqp>('amqplib');

/**
 * Publishes each message to an exchange with a routing key templated from the message, on a
 * confirm channel: a write resolves once the broker confirmed every message in it. The message
 * id travels as `message-id`, the key as the `ix-key` header.
 */
export class RabbitSink implements Sink {
  private conn: ChannelModel | undefined;
  private ch: ConfirmChannel | undefined;
  private exchange = '';
  private connecting: Promise<ConfirmChannel> | undefined;
  private closed = false;
  private readonly route: (m: Message) => string;
  private readonly priority: ((m: Message) => number) | undefined;
  private readonly expiration: string | undefined;
  private readonly timeoutMs: number;

  constructor(private readonly c: RabbitSinkConfig) {
    const defaultKey = c.routingKey ?? (c.queue && (typeof c.exchange === 'string' ? c.exchange : c.exchange.name) === '' ? c.queue.name : undefined);
    this.route = compileRouter(defaultKey, c.routes, 'routing key');
    if (typeof c.priority === 'number') {
      const p = c.priority;
      this.priority = () => p;
    } else if (typeof c.priority === 'string') {
      const f = compileDestination(c.priority);
      this.priority = (m) => Number(f(m));
    }
    this.expiration = c.ttl === undefined ? undefined : String(parseDuration(c.ttl));
    this.timeoutMs = parseDuration(c.timeout);
  }

  private channel(): Promise<ConfirmChannel> {
    if (this.closed) return Promise.reject(new IxError('IX_SINK_FAILED', { sink: 'rabbitmq', detail: 'sink is closed' }, { retryable: false }));
    if (this.ch) return Promise.resolve(this.ch);
    this.connecting ??= (async () => {
      try {
        const conn = await amqp().connect(this.c.url);
        conn.on('error', () => undefined);
        const ch = await conn.createConfirmChannel();
        ch.on('error', () => undefined);
        const reset = (): void => {
          if (this.ch === ch) this.ch = undefined;
          if (this.conn === conn) this.conn = undefined;
        };
        conn.on('close', reset);
        ch.on('close', reset);
        this.exchange = await assertExchange(ch, this.c.exchange);
        if (this.c.queue) {
          await assertQueue(ch, this.c.queue.name, { durable: true, type: 'classic', ...(this.c.queue.declare ?? {}) });
          if (this.exchange !== '') await ch.bindQueue(this.c.queue.name, this.exchange, this.c.routingKey?.includes('${') ? '#' : (this.c.routingKey ?? ''));
        }
        this.conn = conn;
        this.ch = ch;
        return ch;
      } catch (err) {
        throw new IxError('IX_SINK_FAILED', { sink: 'rabbitmq', detail: `cannot connect to ${redactUrl(this.c.url)}: ${errorMessage(err)}` }, { cause: err });
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  async write(batch: Message[], _ctx?: SinkContext): Promise<void | SinkWriteResult> {
    if (batch.length === 0 && !this.closed) return;
    const ch = await this.channel();
    const failed = new Map<number, unknown>();
    const confirms: Promise<void>[] = [];
    for (let i = 0; i < batch.length; i++) {
      const m = batch[i] as Message;
      let key: string;
      let priority: number | undefined;
      try {
        key = this.route(m);
        priority = this.priority?.(m);
      } catch (err) {
        failed.set(i, err);
        continue;
      }
      const headers: Record<string, string> = { ...m.headers };
      if (m.key !== undefined) headers[this.c.keyHeader] = m.key;
      const opts = {
        messageId: m.id,
        headers,
        persistent: this.c.persistent,
        contentType: this.c.format === 'json' ? 'application/json' : this.c.format === 'text' ? 'text/plain' : 'application/octet-stream',
        timestamp: Math.floor(Date.now() / 1000),
        ...(priority !== undefined && Number.isFinite(priority) ? { priority } : {}),
        ...(this.expiration !== undefined ? { expiration: this.expiration } : {}),
      };
      const content = encodePayload(m.payload, this.c.format);
      const idx = i;
      let ok = true;
      confirms.push(
        new Promise<void>((resolve) => {
          ok = ch.publish(this.exchange, key, content, opts, (err) => {
            if (err) failed.set(idx, new IxError('IX_SINK_FAILED', { sink: 'rabbitmq', detail: 'broker nacked the message' }));
            resolve();
          });
        }),
      );
      if (!ok) await new Promise<void>((resolve) => ch.once('drain', resolve));
    }
    try {
      if (this.c.confirm) await withTimeout(Promise.all(confirms), this.timeoutMs, 'publisher confirms');
    } catch (err) {
      throw new IxError('IX_SINK_FAILED', { sink: 'rabbitmq', detail: errorMessage(err) }, { cause: err });
    }
    if (this.ch !== ch) {
      throw new IxError('IX_SINK_FAILED', { sink: 'rabbitmq', detail: 'channel closed before every confirm arrived' });
    }
    return failed.size > 0 ? { failed } : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    const conn = this.conn;
    this.ch = undefined;
    this.conn = undefined;
    await conn?.close().catch(() => undefined);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
