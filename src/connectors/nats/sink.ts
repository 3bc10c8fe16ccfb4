import type * as Jetstream from '@nats-io/jetstream';
import type { JetStreamClient } from '@nats-io/jetstream';
import type * as Transport from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Sink, SinkContext, SinkWriteResult } from '../../core/component.js';
import { IxError, errorMessage } from '../../core/errors.js';
import type { Message } from '../../core/message.js';
import { parseDuration } from '../../core/units.js';
import { compileRouter, encodePayload } from '../broker-kit.js';
import { connectOptions, type NatsSinkConfig } from './config.js';
import { lazyModule } from '../../core/lazy-module.js';

const transport = lazyModule<typeof Transport>('@nats-io/transport-node');
const jetstreamModule = lazyModule<typeof Jetstream>('@nats-io/jetstream');

/**
 * Publishes each message to a subject templated from it. With `jetstream: true` a write
 * resolves once the stream acknowledged every message, and the message id goes out as
 * Nats-Msg-Id so a redelivered write is stored once. Core publishes resolve after a flush.
 */
export class NatsSink implements Sink {
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private connecting: Promise<NatsConnection> | undefined;
  private closed = false;
  private readonly route: (m: Message) => string;
  private readonly timeoutMs: number;

  constructor(private readonly c: NatsSinkConfig) {
    this.route = compileRouter(c.subject, c.routes, 'subject');
    this.timeoutMs = parseDuration(c.timeout);
  }

  private conn(): Promise<NatsConnection> {
    if (this.closed) return Promise.reject(new IxError('IX_SINK_FAILED', { sink: 'nats', detail: 'sink is closed' }, { retryable: false }));
    if (this.nc && !this.nc.isClosed()) return Promise.resolve(this.nc);
    this.connecting ??= (async () => {
      try {
        const nc = await transport().connect({ ...connectOptions(this.c), maxReconnectAttempts: -1, name: 'ix:nats-sink' });
        this.nc = nc;
        this.js = jetstreamModule().jetstream(nc, { timeout: this.timeoutMs });
        return nc;
      } catch (err) {
        throw new IxError('IX_SINK_FAILED', { sink: 'nats', detail: `cannot connect: ${errorMessage(err)}` }, { cause: err });
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  async write(batch: Message[], _ctx?: SinkContext): Promise<void | SinkWriteResult> {
    const nc = await this.conn();
    const failed = new Map<number, unknown>();
    const acks: Promise<void>[] = [];
    batch.forEach((m, i) => {
      let subject: string;
      try {
        subject = this.route(m);
      } catch (err) {
        failed.set(i, err);
        return;
      }
      const h = transport().headers();
      for (const [k, v] of Object.entries(m.headers)) h.set(k, v);
      if (m.key !== undefined) h.set(this.c.keyHeader, m.key);
      const data = encodePayload(m.payload, this.c.format);
      if (this.c.jetstream) {
        acks.push(
          (this.js as JetStreamClient).publish(subject, data, { msgID: m.id, headers: h }).then(
            () => undefined,
            (err: unknown) => void failed.set(i, new IxError('IX_SINK_FAILED', { sink: 'nats', detail: errorMessage(err) }, { cause: err })),
          ),
        );
      } else {
        h.set('Nats-Msg-Id', m.id);
        nc.publish(subject, data, { headers: h });
      }
    });
    await Promise.all(acks);
    if (!this.c.jetstream) {
      try {
        await nc.flush();
      } catch (err) {
        throw new IxError('IX_SINK_FAILED', { sink: 'nats', detail: errorMessage(err) }, { cause: err });
      }
    }
    if (failed.size === batch.length && batch.length > 0 && acks.length > 0) {
      throw new IxError('IX_SINK_FAILED', { sink: 'nats', detail: errorMessage(failed.values().next().value) });
    }
    return failed.size > 0 ? { failed } : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    const nc = this.nc;
    this.nc = undefined;
    await nc?.drain().catch(() => undefined);
  }
}
