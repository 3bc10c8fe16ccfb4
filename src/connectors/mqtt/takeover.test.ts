import { createServer, type Server, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../core/logger.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import { until } from '../../testing/poll.js';
import { TestSourceContext } from '../../testing/test-source-context.js';
import { withDefaults } from '../broker-kit.js';
import { MqttSourceConfig } from './config.js';
import { MqttSource } from './source.js';

interface Logged {
  readonly level: string;
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

function recordingLogger(into: Logged[]): Logger {
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void =>
      void into.push({ level, msg: typeof obj === 'string' ? obj : (msg ?? ''), fields: typeof obj === 'object' ? { ...obj } : {} });
  const l: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => l };
  return l;
}

/**
 * A broker that speaks just enough MQTT 5 to accept a subscriber, then, `takeOverAfterMs` after
 * its SUBACK, tells it what a broker tells a client whose session another one took over:
 * DISCONNECT with reason 0x8E. (Mosquitto 2.0 closes the connection without a reason instead.)
 */
class TakeoverBroker {
  readonly connects: string[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly takeOverAfterMs: number) {
    this.server = createServer((socket) => this.serve(socket));
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const a = this.server.address() as { port: number };
    return `mqtt://127.0.0.1:${a.port}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    const send = (p: mqttPacket.Packet): boolean => socket.write(mqttPacket.generate(p, { protocolVersion: 5 }));
    parser.on('packet', (p: mqttPacket.Packet) => {
      if (p.cmd === 'connect') {
        this.connects.push(p.clientId);
        send({ cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false });
      } else if (p.cmd === 'subscribe') {
        send({ cmd: 'suback', messageId: p.messageId, granted: p.subscriptions.map((s) => s.qos) });
        setTimeout(() => send({ cmd: 'disconnect', reasonCode: 0x8e }), this.takeOverAfterMs);
      } else if (p.cmd === 'pingreq') send({ cmd: 'pingresp' });
      else if (p.cmd === 'disconnect') socket.end();
    });
    socket.on('data', (d: Buffer) => parser.parse(d));
  }
}

let broker: TakeoverBroker | undefined;
afterEach(async () => {
  await broker?.stop();
  broker = undefined;
});

describe('mqtt source: the broker says the session was taken over (MQTT 5, reason 0x8E)', () => {
  it('warns once with what to do, gives the connection up and reconnects with its clientId', async () => {
    broker = new TakeoverBroker(50);
    const url = await broker.start();
    const logs: Logged[] = [];
    const ctx = new TestSourceContext({ flow: 'orders', logger: recordingLogger(logs) });
    const cfg = withDefaults(MqttSourceConfig, { url, topics: ['orders/#'], qos: 1, reconnect: { initial: 50, max: 100 } });
    const done = new MqttSource(cfg).run(ctx);
    try {
      await until('three connections (two takeovers)', () => Promise.resolve(broker?.connects.length ?? 0), (n) => n >= 3, 5000);
      const warnings = logs.filter((l) => l.level === 'warn' && l.msg.startsWith('mqtt: session taken over: another client connected with this clientId'));
      // each takeover drops the connection, but the warning is said once a minute, not per reconnect
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.fields['hint']).toContain('default clientId');
      expect(new Set(broker.connects)).toEqual(new Set(['ix-orders']));
    } finally {
      ctx.stop();
      await done;
    }
  });

  it('with $share/ moves to another session slot of the store', async () => {
    broker = new TakeoverBroker(50);
    const url = await broker.start();
    const logs: Logged[] = [];
    const store = new SqliteStore(':memory:');
    const ctx = new TestSourceContext({ flow: 'orders', store, logger: recordingLogger(logs) });
    const cfg = withDefaults(MqttSourceConfig, { url, topics: ['$share/g/orders/#'], qos: 1, reconnect: { initial: 50, max: 100 } });
    const done = new MqttSource(cfg).run(ctx);
    try {
      await until('a second connection', () => Promise.resolve(broker?.connects.length ?? 0), (n) => n >= 2, 5000);
      const warning = logs.find((l) => l.level === 'warn' && l.msg.startsWith('mqtt: session taken over'));
      expect(warning?.msg).toContain('moving to another session slot');
      expect(broker.connects[0]).toBe('ix-orders');
      expect(broker.connects[1]).not.toBe('ix-orders');
      expect(broker.connects[1]).toMatch(/^ix-orders-\d+$/);
    } finally {
      ctx.stop();
      await done;
      await store.close();
    }
  });
});
