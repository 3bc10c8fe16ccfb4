import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { startIx } from './cli.js';
import { TcpProxy } from './tcp-proxy.js';

/** One broker's side of the end-to-end fault tests: `ix run` reads an input, writes an output. */
export interface CrashFixture {
  /** The flow's source config `{ kind: config }`; `via` routes the connection through a proxy (host:port). */
  source(opts: { maxDeliveries: number; via?: string }): Record<string, unknown>;
  /** The flow's sink config `{ kind: config }` writing to the output the fixture reads. */
  sink(): Record<string, unknown>;
  /** A sink that can never accept (an unreachable broker): messages stay in flight until the engine dies. */
  deadSink(): Record<string, unknown>;
  /** Publishes `{ n }` for n in [from, from + count) to the input. */
  publish(from: number, count: number): Promise<void>;
  /** The `n` values at the output so far. */
  output(): Promise<Set<number>>;
  /** Messages written to the output so far, duplicates included: a cheap count, polled often. */
  written(): Promise<number>;
  cleanup(): Promise<void>;
}

export interface CrashSuiteOptions {
  /** host:port of the broker, for cutting the engine's connection with a TcpProxy. */
  brokerAddress: string;
  /** Whether the broker counts deliveries itself, so a poison message is caught across engine crashes. */
  countsDeliveries: boolean;
  /**
   * Whether cutting the connection with a TcpProxy cuts the engine off the broker. Not for
   * Kafka: the bootstrap address only hands out the brokers' advertised addresses.
   * @defaultValue true
   */
  cutsConnection?: boolean;
  /** @defaultValue 3000 */
  count?: number;
}

function writeSpec(dir: string, source: Record<string, unknown>, sink: Record<string, unknown>, errors?: Record<string, unknown>): void {
  const flow: Record<string, unknown> = { batchSize: 50, concurrency: 2, source, sink };
  if (errors) flow['errors'] = errors;
  writeFileSync(join(dir, 'spec.yaml'), JSON.stringify({ version: 1, admin: { enabled: false }, flows: { pipe: flow } }, null, 2));
}

async function waitUntil(pred: () => Promise<boolean>, timeoutMs: number, what: string, everyMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function missing(seen: Set<number>, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count && out.length < 10; i++) if (!seen.has(i)) out.push(i);
  return out;
}

/**
 * The end-to-end fault suite every broker passes with the real engine (`ix run`): SIGKILLed
 * mid-stream and restarted, every message reaches the output; the engine's connection to the
 * broker cut and restored mid-stream (a TcpProxy, so the shared broker keeps running for
 * others), nothing is lost; a poison message that never settles ends in the store DLQ once it
 * was delivered more than maxDeliveries times.
 */
export function brokerCrashSuite(name: string, make: () => Promise<CrashFixture>, opts: CrashSuiteOptions): void {
  const count = opts.count ?? 3000;
  describe(`${name}: ix run under faults`, () => {
    it(`delivers all ${count} messages when the engine is SIGKILLed mid-stream three times`, async () => {
      const fx = await make();
      const dir = mkdtempSync(join(tmpdir(), `ix-${name}-crash-`));
      try {
        writeSpec(dir, fx.source({ maxDeliveries: 10 }), fx.sink());
        await fx.publish(0, count);
        let killed = 0;
        for (let i = 0; i < 3; i++) {
          // Kill by progress, not after a delay: as soon as this run moved a few more messages
          // (the engine can move them all within a fraction of a second on an idle machine).
          const before = await fx.written();
          const target = before + 1 + Math.floor(Math.random() * 50);
          const run = startIx(['run', 'spec.yaml', '--log-level', 'info'], { cwd: dir });
          await waitUntil(async () => run.child.exitCode !== null || (await fx.written()) >= target, 90_000, `run ${i + 1} to move messages`, 5).catch((err: unknown) => {
            throw new Error(`${String(err)}; output ${before}, stderr:\n${run.stderr().slice(-4000)}`);
          });
          if (run.child.exitCode === null) {
            run.child.kill('SIGKILL');
            killed++;
          }
          await run.exited;
        }
        const mid = (await fx.output()).size;
        expect(killed).toBe(3);
        expect(mid, 'the kills landed mid-stream').toBeLessThan(count);
        const last = startIx(['run', 'spec.yaml', '--log-level', 'info'], { cwd: dir });
        await waitUntil(async () => (await fx.output()).size >= count, 120_000, 'every message at the output');
        last.child.kill('SIGTERM');
        expect(await last.exited, last.stderr()).toBe(0);
        const seen = await fx.output();
        expect(missing(seen, count)).toEqual([]);
        console.log(`${name} crash test: 3 kills landed mid-stream; ${mid} of ${count} at the output before the last run`);
      } finally {
        await fx.cleanup();
      }
    }, 300_000);

    it.skipIf(opts.cutsConnection === false)('loses nothing when the broker goes away mid-stream and comes back', async () => {
      const fx = await make();
      const dir = mkdtempSync(join(tmpdir(), `ix-${name}-loss-`));
      const [host, port] = opts.brokerAddress.split(':');
      const proxy = await new TcpProxy(host as string, Number(port)).start();
      try {
        writeSpec(dir, fx.source({ maxDeliveries: 10, via: proxy.url }), fx.sink());
        await fx.publish(0, count / 2);
        const run = startIx(['run', 'spec.yaml', '--log-level', 'info'], { cwd: dir });
        await run.waitFor(/interchange started/, 90_000);
        await waitUntil(async () => (await fx.output()).size > 0, 60_000, 'first messages');
        proxy.cut();
        await fx.publish(count / 2, count / 2);
        await new Promise((r) => setTimeout(r, 2000));
        proxy.restore();
        await waitUntil(async () => (await fx.output()).size >= count, 120_000, 'every message after the broker returned');
        expect(run.stderr()).toMatch(/reconnecting/);
        run.child.kill('SIGTERM');
        expect(await run.exited, run.stderr()).toBe(0);
        expect(missing(await fx.output(), count)).toEqual([]);
      } finally {
        await proxy.close();
        await fx.cleanup();
      }
    }, 300_000);

    if (opts.countsDeliveries) {
      it('dead-letters a poison message that crashes the engine, after maxDeliveries', async () => {
        const fx = await make();
        const dir = mkdtempSync(join(tmpdir(), `ix-${name}-poison-`));
        try {
          writeSpec(dir, fx.source({ maxDeliveries: 2 }), fx.deadSink(), { retry: { attempts: 1000, backoff: 'fixed', initial: '200ms', max: '200ms' } });
          await fx.publish(0, 1);
          const dead = (): { reason: string; message_id: string }[] => {
            const file = join(dir, '.interchange/state.db');
            if (!existsSync(file)) return [];
            const db = new Database(file, { readonly: true, fileMustExist: true });
            try {
              return db.prepare('SELECT reason, message_id FROM dead_letters').all() as { reason: string; message_id: string }[];
            } finally {
              db.close();
            }
          };
          // Each run: wait until the message reached the (dead) sink in this run, or was
          // dead-lettered; SIGKILL it while in flight, or stop it cleanly once dead-lettered (so
          // the broker acknowledgement that follows the DLQ write is not cut off).
          const reached = /sink write failed; retrying|dead-lettered/;
          let runs = 0;
          while (dead().length === 0 && runs < 6) {
            runs++;
            const run = startIx(['run', 'spec.yaml', '--log-level', 'debug'], { cwd: dir });
            await run.waitFor(reached, 90_000);
            if (dead().length > 0) {
              run.child.kill('SIGTERM');
              expect(await run.exited, run.stderr()).toBe(0);
            } else {
              run.child.kill('SIGKILL');
              await run.exited;
            }
          }
          const rows = dead();
          expect(rows.length).toBe(1);
          expect(rows[0]?.reason).toMatch(/delivered \d+ times, more than maxDeliveries 2/);
          // A live consumer keeps its message (no redelivery within a run), so it took crashes to
          // get there. Not necessarily one per delivery: a broker may spend a delivery on the
          // crashed consumer (a JetStream pull request it left behind).
          expect(runs).toBeGreaterThanOrEqual(2);
          // acknowledged at the broker once dead-lettered: a clean run sees nothing more
          writeSpec(dir, fx.source({ maxDeliveries: 2 }), fx.sink());
          const clean = startIx(['run', 'spec.yaml', '--log-level', 'info'], { cwd: dir });
          await clean.waitFor(/interchange started/, 90_000);
          // past the redelivery window (ack wait / claim idle) of the fixtures
          await new Promise((r) => setTimeout(r, 3000));
          clean.child.kill('SIGTERM');
          expect(await clean.exited, clean.stderr()).toBe(0);
          expect((await fx.output()).size).toBe(0);
          expect(dead().length).toBe(1);
        } finally {
          await fx.cleanup();
        }
      }, 300_000);
    }
  });
}

/** A broker process of a test's own (never the shared service), on a free port, with its data in a temp folder. */
export class OwnBroker {
  private child: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'ix-own-broker-'));
  port = 0;

  /** `args` builds the command line from the port and data folder; the same line serves every restart. */
  constructor(
    private readonly command: string,
    private readonly args: (port: number, dir: string) => string[],
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    if (this.port === 0) this.port = await freePort();
    const child = spawn(this.command, this.args(this.port, this.dir), { stdio: 'ignore' });
    this.child = child;
    const deadline = Date.now() + 30_000;
    while (!(await accepts(this.port))) {
      if (child.exitCode !== null) throw new Error(`${this.command} exited with ${child.exitCode} before listening on ${this.port}`);
      if (Date.now() > deadline) throw new Error(`${this.command} did not listen on ${this.port} within 30s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return this;
  }

  /** kill -9: no shutdown of its own, only what it had written to its files survives. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  async close(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/**
 * A real broker restart: the test's own broker (source and sink both on it) is killed with
 * SIGKILL mid-stream and started again on the same data; the running engine reconnects and
 * every message reaches the output. `make` builds the fixture against the broker's address.
 */
export function brokerRestartSuite(name: string, broker: () => OwnBroker, make: (address: string) => Promise<CrashFixture>, opts: { count?: number } = {}): void {
  const count = opts.count ?? 2000;
  it(`${name}: loses nothing when its broker is killed (SIGKILL) mid-stream and restarted`, async () => {
    const own = await broker().start();
    const fx = await make(own.address);
    const dir = mkdtempSync(join(tmpdir(), `ix-${name}-restart-`));
    // Reads while the broker is down fail: they count as "not yet".
    const output = (): Promise<Set<number>> => fx.output().catch(() => new Set<number>());
    try {
      writeSpec(dir, fx.source({ maxDeliveries: 100 }), fx.sink());
      await fx.publish(0, count / 2);
      const run = startIx(['run', 'spec.yaml', '--log-level', 'info'], { cwd: dir });
      await run.waitFor(/interchange started/, 90_000);
      const target = 1 + Math.floor(Math.random() * 100);
      await waitUntil(async () => (await fx.written().catch(() => 0)) >= target, 90_000, 'first messages', 5);
      const atKill = await fx.written();
      await own.kill();
      await new Promise((r) => setTimeout(r, 1500));
      await own.start();
      await waitUntil(async () => (await fx.publish(count / 2, count / 2).then(() => true).catch(() => false)), 60_000, 'publishing after the restart', 500);
      await waitUntil(async () => (await output()).size >= count, 120_000, 'every message after the broker restarted').catch((err: unknown) => {
        throw new Error(`${String(err)}; stderr:\n${run.stderr().slice(-4000)}`);
      });
      expect(run.stderr()).toMatch(/reconnecting/);
      run.child.kill('SIGTERM');
      expect(await run.exited, run.stderr()).toBe(0);
      const seen = await output();
      expect(missing(seen, count)).toEqual([]);
      console.log(`${name} restart test: broker killed with ${atKill} of ${count / 2} published at the output; all ${count} arrived`);
    } finally {
      await fx.cleanup().catch(() => undefined);
      await own.close();
    }
  }, 300_000);
}
