import type * as Mqtt from 'mqtt';
import type { IClientOptions, IClientPublishOptions, MqttClient } from 'mqtt';
import { lazyModule } from '../../core/lazy-module.js';
import type { Sink, SinkContext, SinkWriteResult } from '../../core/component.js';
import { IxError, errorMessage } from '../../core/errors.js';
import type { Message } from '../../core/message.js';
import { parseDuration } from '../../core/units.js';
import { compileRouter, encodePayload, redactUrl } from '../broker-kit.js';
import type { MqttSinkConfig } from './config.js';

const mqtt = lazyModule<typeof Mqtt>('mqtt');

/**
 * Publishes each message to a topic templated from it. With QoS 1 or 2 a write resolves once
 * the broker acknowledged every message (PUBACK / PUBCOMP). With MQTT 5 the message id, key
 * and headers travel as user properties.
 */
export class MqttSink implements Sink {
  private client: MqttClient | undefined;
  private connecting: Promise<MqttClient> | undefined;
  private closed = false;
  private readonly route: (m: Message) => string;
  private readonly timeoutMs: number;

  constructor(private readonly c: MqttSinkConfig) {
    this.route = compileRouter(c.topic, c.routes, 'topic');
    this.timeoutMs = parseDuration(c.timeout);
  }

  private conn(): Promise<MqttClient> {
    if (this.closed) return Promise.reject(new IxError('IX_SINK_FAILED', { sink: 'mqtt', detail: 'sink is closed' }, { retryable: false }));
    if (this.client?.connected) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      try {
        await this.client?.endAsync(true).catch(() => undefined);
        const opts: IClientOptions = {
          protocolVersion: this.c.protocolVersion,
          reconnectPeriod: 0,
          connectTimeout: 5000,
          clean: true,
          ...(this.c.clientId !== undefined ? { clientId: this.c.clientId } : {}),
          ...(this.c.username !== undefined ? { username: this.c.username } : {}),
          ...(this.c.password !== undefined ? { password: this.c.password } : {}),
        };
        const client = await mqtt().connectAsync(this.c.url, opts);
        client.on('error', () => undefined);
        this.client = client;
        return client;
      } catch (err) {
        throw new IxError('IX_SINK_FAILED', { sink: 'mqtt', detail: `cannot connect to ${redactUrl(this.c.url)}: ${errorMessage(err)}` }, { cause: err });
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  async write(batch: Message[], _ctx?: SinkContext): Promise<void | SinkWriteResult> {
    const client = await this.conn();
    const failed = new Map<number, unknown>();
    const acks: Promise<void>[] = [];
    batch.forEach((m, i) => {
      let topic: string;
      try {
        topic = this.route(m);
      } catch (err) {
        failed.set(i, err);
        return;
      }
      const opts: IClientPublishOptions = { qos: this.c.qos, retain: this.c.retain };
      if (this.c.protocolVersion === 5) {
        const userProperties: Record<string, string> = { ...m.headers, 'ix-id': m.id };
        if (m.key !== undefined) userProperties['ix-key'] = m.key;
        opts.properties = { userProperties };
      }
      acks.push(
        client.publishAsync(topic, encodePayload(m.payload, this.c.format), opts).then(
          () => undefined,
          (err: unknown) => void failed.set(i, new IxError('IX_SINK_FAILED', { sink: 'mqtt', detail: errorMessage(err) }, { cause: err })),
        ),
      );
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all(acks),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${this.timeoutMs}ms waiting for acknowledgements`)), this.timeoutMs);
        }),
      ]);
    } catch (err) {
      throw new IxError('IX_SINK_FAILED', { sink: 'mqtt', detail: errorMessage(err) }, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    if (!client.connected) throw new IxError('IX_SINK_FAILED', { sink: 'mqtt', detail: 'connection lost during the write' });
    return failed.size > 0 ? { failed } : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = this.client;
    this.client = undefined;
    await c?.endAsync().catch(() => undefined);
  }
}
