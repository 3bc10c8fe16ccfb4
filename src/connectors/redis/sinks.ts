import type { Redis } from 'ioredis';
import type { Sink, SinkContext, SinkWriteResult } from '../../core/component.js';
import { IxError, errorMessage } from '../../core/errors.js';
import type { Message } from '../../core/message.js';
import { compileRouter, encodePayload, redactUrl, type Format } from '../broker-kit.js';
import { sharedRedis } from './client.js';
import type { PubSubSinkConfig, StreamSinkConfig } from './config.js';
import { ID_FIELD, KEY_FIELD, PAYLOAD_FIELD } from './stream-source.js';

/**
 * encodePayload, but a string where the body is text: ioredis writes an all-string command as
 * one string, while a Buffer argument switches the whole command to buffer concatenation.
 */
export function encodeArg(payload: unknown, format: Format): string | Buffer {
  if (payload instanceof Uint8Array) return encodePayload(payload, format);
  if (format !== 'json' && typeof payload === 'string') return payload;
  return JSON.stringify(payload ?? null);
}

abstract class RedisSink implements Sink {
  protected client: Redis | undefined;
  private closed = false;

  constructor(protected readonly url: string) {}

  protected async redis(name: string): Promise<Redis> {
    if (this.closed) throw new IxError('IX_SINK_FAILED', { sink: name, detail: 'sink is closed' }, { retryable: false });
    if (!this.client) {
      const r = sharedRedis(this.url, `ix:${name}`);
      r.on('error', () => undefined);
      this.client = r;
      try {
        await r.connect();
      } catch (err) {
        this.client = undefined;
        r.disconnect();
        throw new IxError('IX_SINK_FAILED', { sink: name, detail: `cannot connect to ${redactUrl(this.url)}: ${errorMessage(err)}` }, { cause: err });
      }
    }
    return this.client;
  }

  abstract write(batch: Message[], ctx: SinkContext): Promise<void | SinkWriteResult>;

  async close(): Promise<void> {
    this.closed = true;
    const c = this.client;
    this.client = undefined;
    await c?.quit().catch(() => undefined);
  }

  /** Runs a pipeline; per-command errors fail their message, a transport error fails the batch. */
  protected async exec(name: string, batch: Message[], build: (p: ReturnType<Redis['pipeline']>, m: Message) => void, route: (m: Message) => string): Promise<void | SinkWriteResult> {
    const r = await this.redis(name);
    const failed = new Map<number, unknown>();
    const p = r.pipeline();
    const idx: number[] = [];
    batch.forEach((m, i) => {
      try {
        route(m);
        build(p, m);
        idx.push(i);
      } catch (err) {
        failed.set(i, err);
      }
    });
    if (idx.length > 0) {
      let res: [Error | null, unknown][] | null;
      try {
        res = await p.exec();
      } catch (err) {
        throw new IxError('IX_SINK_FAILED', { sink: name, detail: errorMessage(err) }, { cause: err });
      }
      if (res === null) throw new IxError('IX_SINK_FAILED', { sink: name, detail: 'pipeline aborted' });
      res.forEach(([err], j) => {
        if (err) failed.set(idx[j] as number, new IxError('IX_SINK_FAILED', { sink: name, detail: err.message }));
      });
    }
    return failed.size > 0 ? { failed } : undefined;
  }
}

/** XADDs each message to a stream named from the message: payload, ix-id, ix-key and one field per header. */
export class RedisStreamSink extends RedisSink {
  private readonly route: (m: Message) => string;
  constructor(private readonly c: StreamSinkConfig) {
    super(c.url);
    this.route = compileRouter(c.stream, c.routes, 'stream');
  }

  write(batch: Message[], _ctx?: SinkContext): Promise<void | SinkWriteResult> {
    return this.exec(
      'redis-stream',
      batch,
      (p, m) => {
        const args: (string | Buffer | number)[] = [this.route(m)];
        if (this.c.maxLen !== undefined) args.push('MAXLEN', '~', this.c.maxLen);
        args.push('*', PAYLOAD_FIELD, encodeArg(m.payload, this.c.format), ID_FIELD, m.id);
        if (m.key !== undefined) args.push(KEY_FIELD, m.key);
        for (const [k, v] of Object.entries(m.headers)) if (k !== PAYLOAD_FIELD && k !== ID_FIELD && k !== KEY_FIELD) args.push(k, v);
        p.call('XADD', ...args);
      },
      this.route,
    );
  }
}

/** PUBLISHes each message's payload to a channel named from the message (at most once: subscribers that are away miss it). */
export class RedisPubSubSink extends RedisSink {
  private readonly route: (m: Message) => string;
  constructor(private readonly c: PubSubSinkConfig) {
    super(c.url);
    this.route = compileRouter(c.channel, c.routes, 'channel');
  }

  write(batch: Message[], _ctx?: SinkContext): Promise<void | SinkWriteResult> {
    return this.exec('redis-pubsub', batch, (p, m) => void p.publish(this.route(m), encodeArg(m.payload, this.c.format)), this.route);
  }
}
