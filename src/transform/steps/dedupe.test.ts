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

  it('a key in flight is released when its batch fails as a whole, and remembered only when delivered', async () => {
    const ctx: StepContext = { ...componentContext({ name: 'f.steps[0]' }), signal: new AbortController().signal };
    const step = (await dedupeStep.create('order', ctx)) as Step;
    const msg = (id: string): Message => createMessage({ id, payload: { order: 'a' } });
    const first = (await step.process(msg('m1'), ctx)) as Message;
    expect(first.meta['dedupeKey']).toBe('a');
    expect(await step.process(msg('m2'), ctx)).toBeNull();
    await step.settled?.([{ msg: first, outcome: undefined }], ctx);
    const again = (await step.process(msg('m1'), ctx)) as Message;
    expect(again).not.toBeNull();
    await step.settled?.([{ msg: again, outcome: Outcome.Delivered }], ctx);
    expect(await step.process(msg('m3'), ctx)).toBeNull();
  });
});
