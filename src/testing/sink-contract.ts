import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Sink, SinkContext, SinkWriteResult } from '../core/component.js';
import { systemClock } from '../core/clock.js';
import { silentLogger } from '../core/logger.js';
import { createMessage, type Message } from '../core/message.js';
import { noStore } from './test-source-context.js';

/** What a fixture reads back from the destination for one written message. */
export interface ReadBack {
  /** The message id, when the destination keeps it (a header, a column). */
  id?: string;
  key?: string;
  payload: unknown;
  headers?: Record<string, string>;
  /** Where it landed (queue, subject, table …), when the fixture knows. */
  destination?: string;
}

/** A fresh destination with unique names for one test. */
export interface SinkFixture {
  createSink(): Sink | Promise<Sink>;
  /**
   * Reads back what arrived so far (all of it, for destinations that are not consumed away):
   * the suite polls until `expected` items arrived or the timeout passes.
   */
  read(expected: number): Promise<ReadBack[]>;
  cleanup(): Promise<void>;
}

export interface SinkContractOptions {
  /** Whether the destination keeps the message id (header, property, column). */
  keepsIds: boolean;
  /** Whether the destination keeps headers. */
  keepsHeaders: boolean;
  /** Whether writing the same message twice stores it once (idempotent sinks, upserts). */
  dedupes: boolean;
  /**
   * Makes a payload for record `n`; the suite compares what `read` returns against it.
   * @defaultValue `{ n, name: 'item n', nested: { ok: true } }`
   */
  payload?: (n: number) => Record<string, unknown>;
  /** Records in the large-batch test. @defaultValue 500 */
  large?: number;
}

/** A SinkContext for tests. */
export function testSinkContext(name = 'test.sink'): SinkContext {
  return {
    name,
    flow: 'test',
    logger: silentLogger,
    clock: systemClock,
    baseDir: process.cwd(),
    batchSize: 100,
    resources: {
      get<T>(section: string, ref: string): T {
        throw new Error(`no resource ${section}.${ref}`);
      },
      has: () => false,
    },
    signal: new AbortController().signal,
    store: noStore,
    owner: 'test-worker',
  };
}

/**
 * The contract every sink passes: a resolved write means every message in it is at the
 * destination (payload, and id / key / headers where the destination keeps them); an empty
 * batch is a no-op; a large batch lands whole; a redelivered batch is harmless (stored once
 * where the sink de-duplicates); a write after close fails instead of dropping.
 */
export function sinkContract(name: string, makeFixture: () => Promise<SinkFixture>, opts: SinkContractOptions): void {
  const payloadOf = opts.payload ?? ((n: number) => ({ n, name: `item ${n}`, nested: { ok: true } }));
  const messages = (from: number, k: number): Message[] =>
    Array.from({ length: k }, (_, i) =>
      createMessage({
        id: `msg-${from + i}`,
        key: `key-${(from + i) % 3}`,
        payload: payloadOf(from + i),
        headers: { 'x-test': `h${from + i}` },
      }),
    );
  const nOf = (r: ReadBack): number => (r.payload as { n: number }).n;

  async function readUntil(fx: SinkFixture, expected: number, timeoutMs = 15_000): Promise<ReadBack[]> {
    const deadline = Date.now() + timeoutMs;
    let got = await fx.read(expected);
    while (got.length < expected && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      got = await fx.read(expected);
    }
    return got;
  }

  describe(`${name} sink contract`, () => {
    let fx: SinkFixture;
    let sink: Sink | undefined;
    const ctx = testSinkContext();

    beforeEach(async () => {
      fx = await makeFixture();
      sink = await fx.createSink();
    });
    afterEach(async () => {
      await sink?.close?.();
      await fx.cleanup();
    });

    const write = async (batch: Message[]): Promise<void> => {
      const res = (await sink?.write(batch, ctx)) as SinkWriteResult | undefined;
      expect(res?.failed.size ?? 0, 'no message failed').toBe(0);
    };

    it('a resolved write means every message is at the destination', async () => {
      const batch = messages(0, 20);
      await write(batch);
      const got = await readUntil(fx, 20);
      expect(got.map(nOf).sort((a, b) => a - b)).toEqual(batch.map((m) => (m.payload as { n: number }).n));
      for (const r of got) {
        const m = batch.find((b) => (b.payload as { n: number }).n === nOf(r)) as Message;
        expect(r.payload).toEqual(m.payload);
        if (opts.keepsIds) expect(r.id).toBe(m.id);
        if (opts.keepsHeaders) expect(r.headers?.['x-test']).toBe(m.headers['x-test']);
      }
    });

    it('an empty batch is a no-op', async () => {
      await write([]);
      await write(messages(0, 1));
      const got = await readUntil(fx, 1);
      expect(got.length).toBe(1);
    });

    it(`a large batch lands whole`, async () => {
      const k = opts.large ?? 500;
      await write(messages(0, k));
      const got = await readUntil(fx, k, 30_000);
      expect(new Set(got.map(nOf)).size).toBe(k);
    });

    it(opts.dedupes ? 'a redelivered batch is stored once' : 'a redelivered batch is written again, ids intact', async () => {
      const batch = messages(0, 5);
      await write(batch);
      await write(batch);
      if (opts.dedupes) {
        await readUntil(fx, 10, 1500);
        const got = await fx.read(10);
        expect(got.length).toBe(5);
      } else {
        const got = await readUntil(fx, 10);
        expect(got.length).toBe(10);
        if (opts.keepsIds) expect(new Set(got.map((r) => r.id)).size).toBe(5);
      }
    });

    it('a write after close fails instead of dropping', async () => {
      await sink?.close?.();
      const s = sink;
      sink = undefined;
      let failed = false;
      try {
        const res = (await s?.write(messages(0, 1), ctx)) as SinkWriteResult | undefined;
        failed = (res?.failed.size ?? 0) > 0;
      } catch {
        failed = true;
      }
      expect(failed).toBe(true);
    });
  });
}
