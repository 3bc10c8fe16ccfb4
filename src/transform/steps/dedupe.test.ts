import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../../app/registry.js';
import { Outcome, type Step, type StepContext } from '../../core/component.js';
import { permanent } from '../../core/errors.js';
import { createMessage, type Message } from '../../core/message.js';
import { componentContext } from '../../testing/contexts.js';
import { engineFromYaml, type TestEngine } from '../../testing/harness.js';
import { feed, hooks, receivedBy, registerMemory, resetMemory } from '../../testing/memory.js';
import { dedupeStep } from './dedupe.js';

const registry = registerMemory(createRegistry());
let t: TestEngine | undefined;

beforeEach(() => {
  resetMemory();
  hooks.clear();
});
afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** Runs the flow over `payloads` on the store in `dir`, to the end; returns what the sink got. */
async function run(dir: string, payloads: unknown[], step = 'dedupe: order'): Promise<unknown[]> {
  resetMemory();
  feed('src', payloads);
  t = await engineFromYaml(
    `version: 1\nflows:\n  f:\n    source: { memory: { name: src } }\n    batchSize: 3\n    steps: [ { ${step} } ]\n    errors: { retry: { attempts: 1 } }\n    sink: { memory: { name: out } }\n`,
    registry,
    { dir },
  );
  t.engine.start();
  await t.engine.done();
  // Batches run concurrently: compare without order.
  const got = receivedBy('out')
    .map((m) => m.payload)
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  await t.close();
  t = undefined;
  return got;
}

describe('dedupe step', () => {
  it('drops repeated keys, within a batch and across restarts (keys kept in the store)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-dedupe-'));
    const first = await run(dir, [{ order: 'a', n: 1 }, { order: 'b' }, { order: 'a', n: 2 }, { order: 'c' }, { n: 'no key' }, { n: 'no key' }]);
    expect(first).toEqual([{ n: 'no key' }, { n: 'no key' }, { order: 'a', n: 1 }, { order: 'b' }, { order: 'c' }]);
    const second = await run(dir, [{ order: 'a', n: 3 }, { order: 'd' }, { order: 'c' }]);
    expect(second).toEqual([{ order: 'd' }]);
  });

  it('remembers a key only once the sink accepted the message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-dedupe-'));
    hooks.set('out', (m) => {
      if ((m.payload as { order: string }).order === 'x') throw permanent('sink refused');
      return undefined;
    });
    expect(await run(dir, [{ order: 'x' }, { order: 'y' }])).toEqual([{ order: 'y' }]);
    hooks.clear();
    // x was dead-lettered, not delivered: its retry passes; y was delivered: it is dropped.
    expect(await run(dir, [{ order: 'x' }, { order: 'y' }])).toEqual([{ order: 'x' }]);
  });

  it('forgets keys after the window; scopes are separate per step unless named', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-dedupe-'));
    expect(await run(dir, [{ order: 'a' }], 'dedupe: { key: order, window: 1ms }')).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(await run(dir, [{ order: 'a' }], 'dedupe: { key: order, window: 1ms }')).toHaveLength(1);
    expect(await run(dir, [{ order: 'a' }], "dedupe: { key: \"concat(order, '!')\", scope: other }")).toHaveLength(1);
    expect(await run(dir, [{ order: 'a' }], "dedupe: { key: \"concat(order, '!')\", scope: other }")).toHaveLength(0);
  });

  it('a twin in the same batch as a first that is dead-lettered goes on, not lost (regression)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-dedupe-'));
    hooks.set('out', (m) => {
      if ((m.payload as { n?: number }).n === 1) throw permanent('sink refused');
      return undefined;
    });
    // one batch: a/1 passes and is refused by the sink; its twin a/2 was dropped on its behalf
    expect(await run(dir, [{ order: 'a', n: 1 }, { order: 'a', n: 2 }, { order: 'b' }])).toEqual([{ order: 'a', n: 2 }, { order: 'b' }]);
    hooks.clear();
    // a forwarded twin passes this step no more, so its key is not remembered: a later copy
    // may be delivered again (a duplicate is possible, a loss is not)
    expect(await run(dir, [{ order: 'a', n: 3 }])).toEqual([{ order: 'a', n: 3 }]);
  });

  describe('twins of a message in flight', () => {
    const msg = (id: string, n = 0): Message => createMessage({ id, payload: { order: 'a', n } });
    async function setup(config: unknown = 'order') {
      const forwarded: Message[] = [];
      const base: StepContext = { ...componentContext({ name: 'f.steps[0]' }), signal: new AbortController().signal };
      const ctx: StepContext = { ...base, forward: async (ms) => (forwarded.push(...ms), { persisted: ms.length, duplicates: 0 }) as never };
      const step = (await dedupeStep.create(config as never, ctx)) as Step;
      const inBatch = (): StepContext => ({ ...ctx, batch: {} });
      return { step, forwarded, inBatch };
    }

    it('from another batch, waits for the first: dropped when it was delivered', async () => {
      const { step, inBatch } = await setup();
      const first = (await step.process(msg('m1'), inBatch())) as Message;
      expect(first.meta['dedupeKey']).toBe('a');
      let twinDone = false;
      const twin = Promise.resolve(step.process(msg('m2'), inBatch())).finally(() => (twinDone = true));
      await new Promise((r) => setTimeout(r, 20));
      expect(twinDone).toBe(false);
      await step.settled?.([{ msg: first, outcome: Outcome.Delivered }], inBatch());
      expect(await twin).toBeNull();
    });

    it('from another batch, goes on when the first was dead-lettered (regression)', async () => {
      const { step, inBatch } = await setup();
      const first = (await step.process(msg('m1', 1), inBatch())) as Message;
      const twin = Promise.resolve(step.process(msg('m2', 2), inBatch()));
      await step.settled?.([{ msg: first, outcome: Outcome.DeadLettered }], inBatch());
      const went = (await twin) as Message;
      expect(went.payload).toEqual({ order: 'a', n: 2 });
      expect(went.meta['dedupeKey']).toBe('a');
      // now the twin is the one in flight; once delivered, the key is remembered
      await step.settled?.([{ msg: went, outcome: Outcome.Delivered }], inBatch());
      expect(await step.process(msg('m3'), inBatch())).toBeNull();
    });

    it('from another batch, waits at most `wait`, then goes on', async () => {
      const { step, inBatch } = await setup({ key: 'order', wait: '30ms' });
      await step.process(msg('m1'), inBatch());
      const went = (await step.process(msg('m2', 2), inBatch())) as Message;
      expect(went.payload).toEqual({ order: 'a', n: 2 });
    });

    it('from the same batch, is held and forwarded when the first is not delivered; dropped when it is', async () => {
      const { step, forwarded, inBatch } = await setup();
      const batch = inBatch();
      const first = (await step.process(msg('m1', 1), batch)) as Message;
      expect(await step.process(msg('m2', 2), batch)).toBeNull();
      await step.settled?.([{ msg: first, outcome: Outcome.DeadLettered }], batch);
      expect(forwarded.map((m) => [m.id, m.payload, m.meta['dedupeForwardedFor']])).toEqual([['m2~dedupe', { order: 'a', n: 2 }, 'm1']]);
      forwarded.length = 0;
      const again = inBatch();
      const next = (await step.process(msg('m4', 4), again)) as Message;
      expect(await step.process(msg('m5', 5), again)).toBeNull();
      await step.settled?.([{ msg: next, outcome: Outcome.Delivered }], again);
      expect(forwarded).toEqual([]);
    });

    it('a key in flight is released when its batch fails as a whole, and remembered only when delivered', async () => {
      const { step, forwarded, inBatch } = await setup();
      const batch = inBatch();
      const first = (await step.process(msg('m1'), batch)) as Message;
      expect(first.meta['dedupeKey']).toBe('a');
      expect(await step.process(msg('m2'), batch)).toBeNull();
      // the whole batch comes again: nothing forwarded, the key released
      await step.settled?.([{ msg: first, outcome: undefined }], batch);
      expect(forwarded).toEqual([]);
      const retry = inBatch();
      const again = (await step.process(msg('m1'), retry)) as Message;
      expect(again).not.toBeNull();
      await step.settled?.([{ msg: again, outcome: Outcome.Delivered }], retry);
      expect(await step.process(msg('m3'), inBatch())).toBeNull();
    });
  });
});
