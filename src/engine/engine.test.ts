import { Type } from '@sinclair/typebox';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { permanent } from '../core/errors.js';
import { createMessage, deriveMessage, type Message } from '../core/message.js';
import { Outcome } from '../core/component.js';
import { createRegistry } from '../app/registry.js';
import { defineSource } from '../registry/registry.js';
import { SpecError } from '../spec/problem.js';
import { engineFromYaml } from '../testing/harness.js';
import { feed, hooks, outcomesOf, receivedBy, registerMemory, resetMemory } from '../testing/memory.js';

const registry = registerMemory(createRegistry());

const spec = (flow: string): string => `version: 1\nflows:\n  f:\n${flow
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}\n`;

beforeEach(() => {
  resetMemory();
  hooks.clear();
});

describe('engine: delivery contract', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  it('delivers every message to every sink (fan-out) and acks after all accepted', async () => {
    feed('src', [1, 2, 3, 4, 5]);
    const t = await engineFromYaml(spec('source: { memory: { name: src } }\nbatchSize: 2\nsinks:\n  - memory: { name: a }\n  - memory: { name: b }'), registry);
    close = t.close;
    t.engine.start();
    await t.engine.done();
    expect(receivedBy('a').map((m) => m.payload)).toEqual([1, 2, 3, 4, 5]);
    expect(receivedBy('b').map((m) => m.payload)).toEqual([1, 2, 3, 4, 5]);
    expect(t.engine.stats()['f']).toEqual({ in: 5, out: 5, failed: 0, deadLettered: 0, filtered: 0 });
    const o = outcomesOf('src');
    expect(o.flatMap((x) => x.outcomes)).toEqual([1, 1, 1, 1, 1].map(() => Outcome.Delivered));
  });

  it('splits into children and settles the parent when all children are delivered', async () => {
    feed('src', [[1, 2, 3], [4]]);
    hooks.set('split', (m: Message) => (m.payload as number[]).map((p, i) => deriveMessage(m, i, p)));
    const t = await engineFromYaml(spec('source: { memory: { name: src } }\nsteps: [ { test: split } ]\nsink: { memory: { name: out } }'), registry);
    close = t.close;
    t.engine.start();
    await t.engine.done();
    expect(receivedBy('out').map((m) => [m.id, m.payload])).toEqual([
      ['src-1/0', 1],
      ['src-1/1', 2],
      ['src-1/2', 3],
      ['src-2/0', 4],
    ]);
    expect(t.engine.stats()['f']?.out).toBe(2);
  });

  it('counts filtered messages and keeps in = out + dead-lettered + filtered', async () => {
    feed('src', [1, 2, 3, 4, 5, 6]);
    hooks.set('odd', (m: Message) => ((m.payload as number) % 2 === 1 ? m : null));
    hooks.set('out', (m: Message) => {
      if (m.payload === 5) throw permanent('five is not allowed');
    });
    const t = await engineFromYaml(spec('source: { memory: { name: src } }\nsteps: [ { test: odd } ]\nsink: { memory: { name: out } }'), registry);
    close = t.close;
    t.engine.start();
    await t.engine.done();
    const s = t.engine.stats()['f'];
    expect(s).toMatchObject({ in: 6, out: 2, deadLettered: 1, filtered: 3 });
    expect((s?.out ?? 0) + (s?.deadLettered ?? 0) + (s?.filtered ?? 0)).toBe(s?.in);
    const dead = await t.store.listDeadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ flow: 'f', stage: 'sink:memory', attempts: 1 });
    expect(dead[0]?.reason).toContain('five is not allowed');
    expect(outcomesOf('src').flatMap((x) => x.outcomes)).toEqual([1, 3, 1, 3, 2, 3]);
  });

  it('retries a failing sink item with backoff and delivers it when it recovers', async () => {
    feed('src', ['a', 'b', 'c']);
    let fails = 2;
    hooks.set('out', (m: Message) => {
      if (m.payload === 'b' && fails-- > 0) throw new Error('temporarily down');
    });
    const t = await engineFromYaml(
      spec('source: { memory: { name: src } }\nsink: { memory: { name: out } }\nerrors: { retry: { attempts: 5, initial: 1ms, max: 5ms } }'),
      registry,
    );
    close = t.close;
    t.engine.start();
    await t.engine.done();
    expect(receivedBy('out').map((m) => m.payload).sort()).toEqual(['a', 'b', 'c']);
    expect(t.engine.stats()['f']).toMatchObject({ out: 3, failed: 2, deadLettered: 0 });
  });

  it('dead-letters after the bounded retries with the reason and attempts', async () => {
    feed('src', ['x']);
    hooks.set('boom', () => {
      throw new Error('upstream 503');
    });
    const t = await engineFromYaml(
      spec('source: { memory: { name: src } }\nsteps: [ { test: boom } ]\nsink: { memory: { name: out } }\nerrors: { retry: { attempts: 3, initial: 1ms, max: 2ms } }'),
      registry,
    );
    close = t.close;
    t.engine.start();
    await t.engine.done();
    const [d] = await t.store.listDeadLetters();
    expect(d).toMatchObject({ stage: 'step:test', attempts: 3, message: { id: 'src-1', payload: 'x' } });
    expect(d?.reason).toBe('f.steps[0]: upstream 503');
    expect(t.engine.stats()['f']).toMatchObject({ in: 1, out: 0, failed: 3, deadLettered: 1 });
  });

  it('dead-letters a permanent step error at once', async () => {
    feed('src', ['x']);
    hooks.set('bad', () => {
      throw permanent('cannot parse date "soon" at order.placed_at');
    });
    const t = await engineFromYaml(spec('source: { memory: { name: src } }\nsteps: [ { test: bad } ]\nsink: { memory: { name: out } }'), registry);
    close = t.close;
    t.engine.start();
    await t.engine.done();
    const [d] = await t.store.listDeadLetters();
    expect(d?.attempts).toBe(1);
    expect(d?.reason).toContain('order.placed_at');
  });

  it('applies backpressure: a slow sink bounds the batches in flight', async () => {
    feed('src', Array.from({ length: 100 }, (_, i) => i));
    let inSink = 0;
    let maxInSink = 0;
    hooks.set('slow', async () => {
      inSink++;
      maxInSink = Math.max(maxInSink, inSink);
      await new Promise((r) => setTimeout(r, 1));
      inSink--;
    });
    const t = await engineFromYaml(spec('source: { memory: { name: src } }\nbatchSize: 1\nconcurrency: 3\nsink: { memory: { name: slow } }'), registry);
    close = t.close;
    t.engine.start();
    await t.engine.done();
    expect(receivedBy('slow')).toHaveLength(100);
    expect(maxInSink).toBeLessThanOrEqual(3);
    expect(maxInSink).toBeGreaterThan(1);
  });

  it('dead-letters records the source marked malformed, without running them', async () => {
    const t = await engineFromYaml(spec('source: { memory: { name: src } }\nsink: { memory: { name: out } }'), registry);
    close = t.close;
    const runner = (t.engine as unknown as { flows: { runner: { emit(b: Message[]): Promise<{ settled: Promise<unknown> }> } }[] }).flows[0]?.runner;
    const ack = await runner?.emit([
      { id: 'bad', payload: '{oops', headers: {}, meta: {}, error: 'invalid JSON at line 3: Unexpected token' },
      { id: 'good', payload: 1, headers: {}, meta: {} },
    ]);
    await ack?.settled;
    const [d] = await t.store.listDeadLetters();
    expect(d).toMatchObject({ stage: 'source', reason: 'invalid JSON at line 3: Unexpected token' });
    expect(receivedBy('out').map((m) => m.id)).toEqual(['good']);
  });

  it('replays dead letters through the flow inbox', async () => {
    feed('src', ['p']);
    let broken = true;
    hooks.set('out', () => {
      if (broken) throw permanent('rejected');
    });
    const t = await engineFromYaml(spec('source: { memory: { name: src } }\nsink: { memory: { name: out } }'), registry);
    t.engine.start();
    await t.engine.done();
    await t.engine.stop();
    expect(await t.store.countDeadLetters()).toBe(1);
    broken = false;
    const ids = (await t.store.listDeadLetters()).map((d) => d.id);
    await t.store.replayDeadLetters(ids, (d) => `inbox:${d.flow}`);
    feed('src', []);
    const t2 = await engineFromYaml(spec('source: { memory: { name: src } }\nsink: { memory: { name: out } }'), registry, { store: t.store, dir: t.dir });
    close = t2.close;
    t2.engine.start();
    await t2.engine.done();
    expect(receivedBy('out').map((m) => m.id)).toEqual(['src-1']);
    expect(await t.store.countDeadLetters()).toBe(0);
  });
});

describe('engine: shutdown', () => {
  it('abandons work past the drain deadline: the ack rejects and nothing is acknowledged', async () => {
    feed('src', ['slow']);
    hooks.set('out', () => {
      throw new Error('down');
    });
    const t = await engineFromYaml(
      spec('source: { memory: { name: src } }\nsink: { memory: { name: out } }\nerrors: { retry: { attempts: 100, initial: 10s, max: 10s, jitter: false } }'),
      registry,
    );
    t.engine.start();
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await t.engine.stop(100);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(outcomesOf('src')).toEqual([]);
    expect(await t.store.countDeadLetters()).toBe(0);
    await t.store.close();
  });
});

describe('engine: component checks before anything is built', () => {
  it('reports every problem of every component check at its field, and builds nothing', async () => {
    const r = registry.clone();
    let created = 0;
    r.registerSink({
      kind: 'checked',
      summary: 'a sink whose check refuses its target',
      config: Type.Object({ target: Type.String() }, { additionalProperties: false }),
      check: (config) => (config.target === 'bad' ? [{ field: ['target'], error: new Error(`target ${config.target} is unreachable`) }] : []),
      create: () => {
        created++;
        return { write: () => Promise.resolve() };
      },
    });
    r.registerStep({
      kind: 'throwing-check',
      summary: 'a step whose check throws',
      config: Type.Object({}),
      check: () => {
        throw new Error('not today');
      },
      create: () => ({ process: (m: Message) => m }),
    });
    const yaml = 'version: 1\nflows:\n  a:\n    source: { memory: { name: src } }\n    sink: { checked: { target: ok } }\n  b:\n    source: { memory: { name: src } }\n    steps: [ { throwing-check: {} } ]\n    sink: { checked: { target: bad } }\n';
    const err = await engineFromYaml(yaml, r).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SpecError);
    expect((err as SpecError).problems.map((p) => `${p.line}:${p.col}: ${p.message}`)).toEqual(['8:32: not today', '9:32: target bad is unreachable']);
    expect(created).toBe(0);
  });
});

describe('engine: push sources hand their messages straight to the flow', () => {
  const pushRegistry = registerMemory(createRegistry());
  let pushed = 0;
  pushRegistry.registerSource(
    defineSource({
      kind: 'pusher',
      summary: 'Test source: persists `count` messages one by one, then stays open until shutdown.',
      config: Type.Object({ count: Type.Number(), gapMs: Type.Optional(Type.Number()) }),
      create: (config) => ({
        async run(ctx) {
          for (let i = 0; i < config.count; i++) {
            await ctx.persist([createMessage({ id: `push-${i}`, payload: i })]);
            pushed++;
            if (config.gapMs) await new Promise((r) => setTimeout(r, config.gapMs));
          }
          await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        },
      }),
    }),
  );
  const pushSpec = (count: number, extra = '', gapMs = 0): string => spec(`source: { pusher: { count: ${count}, gapMs: ${gapMs} } }\nsink: { memory: { name: out } }\nbatchSize: 1\nconcurrency: 1${extra}`);

  it('delivers what was persisted, and what already waited in the inbox, and completes every one', async () => {
    pushed = 0;
    const t = await engineFromYaml(pushSpec(50), pushRegistry);
    await t.store.enqueue('inbox:f', [{ message: { id: 'waiting', payload: 0, headers: {}, meta: {} } }]);
    t.engine.start();
    const end = Date.now() + 10_000;
    while (receivedBy('out').length < 51 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    expect(new Set(receivedBy('out').map((m) => m.id)).size).toBe(51);
    expect(receivedBy('out').find((m) => m.id === 'push-0')?.meta['attempts']).toBe(0);
    await new Promise((r) => setTimeout(r, 50));
    expect(await t.store.queueStats('inbox:f')).toEqual({ ready: 0, scheduled: 0, leased: 0 });
    await t.close();
  });

  it('an inbox entry stored without its payload (it is the raw text in meta) is delivered with it; one whose text does not parse is dead-lettered with the reason', async () => {
    pushed = 0;
    const t = await engineFromYaml(pushSpec(0), pushRegistry);
    const from = { meta: ['webhook', 'raw'], as: 'json' } as const;
    await t.store.enqueue('inbox:f', [
      { message: { id: 'kept', payload: undefined, headers: {}, meta: { webhook: { raw: '{"total":42.5}' } }, payloadFrom: from } },
      { message: { id: 'torn', payload: undefined, headers: {}, meta: { webhook: { raw: '{"total":' } }, payloadFrom: from } },
    ]);
    t.engine.start();
    const end = Date.now() + 10_000;
    while ((receivedBy('out').length < 1 || (await t.store.countDeadLetters('f')) < 1) && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    expect(receivedBy('out').map((m) => [m.id, m.payload])).toEqual([['kept', { total: 42.5 }]]);
    expect(receivedBy('out')[0]).not.toHaveProperty('payloadFrom');
    const [dead] = await t.store.listDeadLetters({ flow: 'f' });
    expect(dead?.message.id).toBe('torn');
    expect(dead?.reason).toMatch(/stored payload unreadable/);
    await t.close();
  });

  it('claims the inbox only now and then while hand-overs feed it, not after every batch', async () => {
    pushed = 0;
    // the source is slower than the flow: the hand-over is empty between messages
    const t = await engineFromYaml(pushSpec(100, '', 2), pushRegistry);
    let claims = 0;
    const claim = t.store.claim.bind(t.store);
    t.store.claim = (...args) => {
      claims++;
      return claim(...args);
    };
    const started = Date.now();
    t.engine.start();
    const end = Date.now() + 10_000;
    while (receivedBy('out').length < 100 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    const elapsed = Date.now() - started;
    expect(new Set(receivedBy('out').map((m) => m.id)).size).toBe(100);
    // one at start, then one per 500 ms (retries come due, replays); before, one per batch of 1
    expect(claims).toBeLessThanOrEqual(2 + Math.ceil(elapsed / 500));
    await t.close();
  });

  it('survives a store that throws at once (not a rejection) while the source leader renews its lease', async () => {
    pushed = 0;
    const t = await engineFromYaml(pushSpec(1), pushRegistry, { sourceLeaseMs: 300 });
    const acquire = t.store.acquireLease.bind(t.store);
    let renewals = 0;
    t.store.acquireLease = (...args) => {
      if (renewals++ === 0) return acquire(...args);
      throw new TypeError('The database connection is not open');
    };
    t.engine.start();
    // renewals every 100 ms: each one throws before any promise exists
    await new Promise((r) => setTimeout(r, 450));
    expect(renewals).toBeGreaterThan(2);
    expect(receivedBy('out').map((m) => m.id)).toEqual(['push-0']);
    await t.close();
  });

  it('gives back at stop what was handed over but not started, at once rather than when its lease expires', async () => {
    pushed = 0;
    let release: () => void = () => undefined;
    const stuck = new Promise<void>((r) => (release = r));
    hooks.set('out', () => stuck);
    const t = await engineFromYaml(pushSpec(20), pushRegistry);
    t.engine.start();
    const end = Date.now() + 10_000;
    while (pushed < 20 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    expect(pushed).toBe(20);
    await t.engine.stop(100);
    release();
    const stats = await t.store.queueStats('inbox:f');
    // the sink holds one, the runner another; the rest waited in the hand-over and are ready again
    expect(stats.ready).toBeGreaterThanOrEqual(15);
    expect(stats.ready + stats.leased).toBe(20);
    await t.store.close();
  });
});
