import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Outcome, type Step, type StepContext } from '../../core/component.js';
import { createMessage, type Message } from '../../core/message.js';
import { PostgresStore } from '../../store/postgres/postgres-store.js';
import { dropSchemas, TEST_POSTGRES_URL, testSchemaName } from '../../store/postgres/test-support.js';
import { componentContext } from '../../testing/contexts.js';
import { FakeClock } from '../../testing/fake-clock.js';
import { serviceAvailable } from '../../testing/services.js';
import { aggregateStep } from './aggregate.js';
import { dedupeStep } from './dedupe.js';

/** Two workers on one PostgreSQL store share aggregate windows and dedupe keys. */

const schemas: string[] = [];
const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});
afterAll(async () => {
  await dropSchemas(schemas);
});

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1500 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

async function worker(schema: string, clock: FakeClock, owner: string, forwarded: Message[]): Promise<StepContext> {
  const store = await PostgresStore.open({ url: TEST_POSTGRES_URL, schema, clock, max: 2 });
  open.push(store);
  return {
    ...componentContext({ clock, store, name: 'f.steps[0]', flow: 'f' }),
    owner,
    signal: new AbortController().signal,
    forward: (messages) => {
      forwarded.push(...messages);
      return Promise.resolve({ accepted: messages.length, duplicates: 0 });
    },
  };
}

describe.skipIf(!serviceAvailable('postgres'))('aggregate and dedupe across workers (PostgreSQL store)', () => {
  it('two workers fill the same windows; each window is closed once, with every member', async () => {
    const schema = testSchemaName('ix_agg');
    schemas.push(schema);
    const clock = new FakeClock(Date.UTC(2026, 0, 1, 12, 0, 0));
    const forwarded: Message[] = [];
    const config = { by: 'k', window: { every: '1m' }, fields: { n: 'count()', ids: 'collect(i)' } };
    const steps: Step[] = [];
    const ctxs: StepContext[] = [];
    for (const owner of ['w1', 'w2']) {
      const ctx = await worker(schema, clock, owner, forwarded);
      const step = (await aggregateStep.create(config, ctx)) as Step;
      open.push({ close: async () => step.close?.() });
      steps.push(step);
      ctxs.push(ctx);
    }
    for (let i = 0; i < 40; i++) {
      const w = i % 2;
      await (steps[w] as Step).process(createMessage({ id: `m${i}`, payload: { k: `key${i % 4}`, i } }), ctxs[w] as StepContext);
    }
    await clock.advance(60_000);
    await until(() => forwarded.length >= 4, 'the four windows');
    await clock.advance(5_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(forwarded.map((m) => m.key).sort()).toEqual(['key0', 'key1', 'key2', 'key3']);
    for (const m of forwarded) {
      const p = m.payload as { n: number; ids: number[] };
      expect(p.n).toBe(10);
      expect([...p.ids].sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, j) => j * 4 + Number(String(m.key).slice(3))));
    }
  });

  it("a key one worker delivered is dropped by the other", async () => {
    const schema = testSchemaName('ix_dedupe');
    schemas.push(schema);
    const clock = new FakeClock();
    const a = await worker(schema, clock, 'w1', []);
    const b = await worker(schema, clock, 'w2', []);
    const sa = (await dedupeStep.create('order', a)) as Step;
    const sb = (await dedupeStep.create('order', b)) as Step;
    const msg = (id: string): Message => createMessage({ id, payload: { order: 'o-1' } });
    const passed = (await sa.process(msg('m1'), a)) as Message;
    expect(passed).not.toBeNull();
    expect(await sb.process(msg('m2'), b)).not.toBeNull(); // not delivered yet: both pass
    await sa.settled?.([{ msg: passed, outcome: Outcome.Delivered }], a);
    expect(await sb.process(msg('m3'), b)).toBeNull();
  });
});
