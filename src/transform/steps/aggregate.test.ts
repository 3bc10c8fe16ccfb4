import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../../app/registry.js';
import type { Step, StepContext } from '../../core/component.js';
import { createMessage, type Message } from '../../core/message.js';
import { defineSource } from '../../registry/registry.js';
import { componentContext } from '../../testing/contexts.js';
import { FakeClock } from '../../testing/fake-clock.js';
import { engineFromYaml, type TestEngine } from '../../testing/harness.js';
import { feed, receivedBy, registerMemory, resetMemory } from '../../testing/memory.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import type { Store } from '../../store/types.js';
import { aggregateStep, type AggregateConfig } from './aggregate.js';

const T0 = Date.UTC(2026, 0, 1, 10, 0, 0);

/** Waits (generously: the machine may be loaded) until `cond` holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1500 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

interface Rig {
  step: Step;
  ctx: StepContext;
  forwarded: Message[][];
  /** Every forward call, failed ones too. */
  attempted: Message[][];
  failForward: { on: boolean };
  /** Passes that looked for due windows (claims made). */
  claims: { n: number };
  /** Resolves once the step has looked for due windows again. */
  nextPass(): Promise<void>;
}

async function rig(config: AggregateConfig, store: Store, clock: FakeClock): Promise<Rig> {
  const forwarded: Message[][] = [];
  const attempted: Message[][] = [];
  const failForward = { on: false };
  const claims = { n: 0 };
  const counting = new Proxy(store, {
    get(target, prop) {
      const v = Reflect.get(target, prop) as unknown;
      if (typeof v !== 'function') return v;
      if (prop === 'claim') {
        return (...args: unknown[]) => {
          claims.n++;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return (v as (...a: unknown[]) => unknown).bind(target);
    },
  });
  const ctx: StepContext = {
    ...componentContext({ clock, store: counting, name: 'f.steps[0]', flow: 'f' }),
    signal: new AbortController().signal,
    forward: (messages) => {
      attempted.push(messages);
      if (failForward.on) return Promise.reject(new Error('inbox unavailable'));
      forwarded.push(messages);
      return Promise.resolve({ accepted: messages.length, duplicates: 0 });
    },
  };
  const step = (await aggregateStep.create(config, ctx)) as Step;
  const nextPass = async (): Promise<void> => {
    const seen = claims.n;
    await until(() => claims.n > seen, 'a pass over due windows');
  };
  return { step, ctx, forwarded, attempted, failForward, claims, nextPass };
}

const orders = [
  { customer: 'ada', amount: 10, sku: 'a' },
  { customer: 'bob', amount: 5, sku: 'b' },
  { customer: 'ada', amount: '30', sku: 'c' },
  { customer: 'ada', amount: null, sku: 'd' },
  { customer: 'bob', amount: 7, sku: 'e' },
];
const msgs = (from = 1): Message[] => orders.map((payload, i) => createMessage({ id: `m${from + i}`, payload }));
const timeConfig: AggregateConfig = {
  by: 'customer',
  window: { every: '1m' },
  fields: { n: 'count()', amounts: 'count(amount)', total: 'sum(amount)', avg: 'avg(amount)', low: 'min(amount)', high: 'max(amount)', skus: 'collect(sku)', first: 'first(sku)', last: 'last(sku)' },
};

let stores: Store[] = [];
let steps: Step[] = [];
afterEach(async () => {
  for (const s of steps) await s.close?.();
  for (const s of stores) await s.close();
  steps = [];
  stores = [];
});

function newStore(clock: FakeClock, file = join(mkdtempSync(join(tmpdir(), 'ix-agg-')), 'state.db')): { store: Store; file: string } {
  const store = new SqliteStore(file, { clock });
  stores.push(store);
  return { store, file };
}

describe('aggregate step', () => {
  it('time windows: absorbs messages, closes on a timer with count, sum, avg, min, max, collect, first, last', async () => {
    const clock = new FakeClock(T0 + 5_000);
    const { store } = newStore(clock);
    const r = await rig(timeConfig, store, clock);
    steps.push(r.step);
    for (const m of msgs()) expect(await r.step.process(m, r.ctx)).toBeNull();
    await clock.advance(30_000);
    await r.nextPass();
    expect(r.forwarded).toEqual([]);
    await clock.advance(30_000);
    await until(() => r.forwarded.length > 0, 'the window to close');
    const results = r.forwarded.flat().sort((a, b) => String(a.key).localeCompare(String(b.key)));
    const window = { start: new Date(T0).toISOString(), end: new Date(T0 + 60_000).toISOString() };
    expect(results.map((m) => m.payload)).toEqual([
      { key: 'ada', count: 3, window, n: 3, amounts: 2, total: 40, avg: 20, low: 10, high: 30, skus: ['a', 'c', 'd'], first: 'a', last: 'd' },
      { key: 'bob', count: 2, window, n: 2, amounts: 2, total: 12, avg: 6, low: 5, high: 7, skus: ['b', 'e'], first: 'b', last: 'e' },
    ]);
    expect(results.map((m) => m.key)).toEqual(['ada', 'bob']);
    // Closed windows are gone: time passing forwards nothing more.
    await clock.advance(120_000);
    await r.nextPass();
    expect(r.forwarded.flat()).toHaveLength(2);
  });

  it('open windows survive a restart; a redelivered message is not counted twice', async () => {
    const clock = new FakeClock(T0);
    const { store, file } = newStore(clock);
    const first = await rig(timeConfig, store, clock);
    const batch = msgs();
    for (const m of batch.slice(0, 3)) await first.step.process(m, first.ctx);
    await first.step.close?.();
    await store.close();
    stores = [];
    const again = newStore(clock, file).store;
    const second = await rig(timeConfig, again, clock);
    steps.push(second.step);
    for (const m of batch) await second.step.process(m, second.ctx);
    await clock.advance(60_000);
    await until(() => second.forwarded.length > 0, 'the window to close');
    expect(second.forwarded.flat().map((m) => (m.payload as { n: number }).n).sort()).toEqual([2, 3]);
  });

  it('count windows close on arrival; within closes a partial group on a timer; a failed forward is retried with the same id', async () => {
    const clock = new FakeClock(T0);
    const { store } = newStore(clock);
    const r = await rig({ by: 'customer', window: { count: 2, within: '5m' }, fields: { skus: 'collect(sku)' } }, store, clock);
    steps.push(r.step);
    for (const m of msgs()) await r.step.process(m, r.ctx);
    // A group that fills is closed before the message that filled it is acknowledged.
    expect(r.forwarded.flat()).toHaveLength(2);
    expect(r.forwarded.flat().map((m) => m.payload)).toEqual(
      expect.arrayContaining([
        { key: 'ada', count: 2, skus: ['a', 'c'] },
        { key: 'bob', count: 2, skus: ['b', 'e'] },
      ]),
    );
    await r.nextPass();
    expect(r.forwarded.flat()).toHaveLength(2);
    r.failForward.on = true;
    const before = r.attempted.length;
    await clock.advance(300_000);
    await until(() => r.attempted.length > before, 'a forward attempt');
    expect(r.forwarded.flat()).toHaveLength(2);
    const failedId = (r.attempted[before] as Message[])[0]?.id;
    r.failForward.on = false;
    await until(() => r.forwarded.flat().length === 3, 'the partial group');
    const partial = r.forwarded.flat()[2] as Message;
    expect(partial.payload).toEqual({ key: 'ada', count: 1, skus: ['d'] });
    expect(partial.id).toBe(failedId);
  });

  it('refuses unknown operations and missing expressions', async () => {
    const clock = new FakeClock(T0);
    const { store } = newStore(clock);
    await expect(rig({ window: { count: 2 }, fields: { x: 'median(a)' } }, store, clock)).rejects.toThrow(/op one of count, sum/);
    await expect(rig({ window: { count: 2 }, fields: { x: 'sum()' } }, store, clock)).rejects.toThrow(/sum\(\) needs an expression/);
  });
});

describe('aggregate in a flow', () => {
  const registry = registerMemory(createRegistry());
  registry.registerSource(
    defineSource({
      kind: 'held',
      summary: 'Test source: emits its feed, then stays open until shutdown.',
      config: Type.Object({ name: Type.String() }),
      create: () => ({
        async run(ctx) {
          await ctx.emit(held.map((p, i) => createMessage({ id: `h-${i}`, payload: p })));
          await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        },
      }),
    }),
  );
  let held: unknown[] = [];
  let t: TestEngine | undefined;
  beforeEach(() => resetMemory());
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('a closed window continues after the aggregate step (not through the steps before it) to the sink', async () => {
    held = orders;
    feed('unused', []);
    const clock = new FakeClock(T0);
    t = await engineFromYaml(
      `version: 1
flows:
  f:
    source: { held: { name: x } }
    steps:
      - map: { fields: [ { from: customer, to: who }, { from: amount, to: amount } ] }
      - aggregate: { by: who, window: { every: 1m }, fields: { total: sum(amount) } }
      - map: { fields: [ { from: key, to: customer }, { from: total, to: total }, { from: window.start, to: from } ] }
    sink: { memory: { name: out } }
`,
      registry,
      { clock },
    );
    t.engine.start();
    const te = t;
    await until(() => te.engine.stats()['f']?.filtered === 5, 'the messages to be absorbed');
    await clock.advance(60_000);
    await until(() => receivedBy('out').length === 2, 'the window results at the sink');
    const got = receivedBy('out')
      .map((m) => m.payload)
      .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    expect(got).toEqual([
      { customer: 'ada', total: 40, from: new Date(T0).toISOString() },
      { customer: 'bob', total: 12, from: new Date(T0).toISOString() },
    ]);
    expect(receivedBy('out').every((m) => !('ix.resumeAfterStep' in m.meta))).toBe(true);
  });
});
