import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { permanent } from '../core/errors.js';
import type { Message } from '../core/message.js';
import { Outcome } from '../core/component.js';
import { createRegistry } from '../app/registry.js';
import { engineFromYaml, type TestEngine } from '../testing/harness.js';
import { feed, hooks, outcomesOf, receivedBy, registerMemory, resetMemory } from '../testing/memory.js';

const registry = registerMemory(createRegistry());

const spec = (flow: string): string => `version: 1\nflows:\n  f:\n${flow
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}\n`;

interface Item {
  k: string;
  n: number;
}
const items = (keys: string[], perKey: number): Item[] => {
  const out: Item[] = [];
  for (let n = 1; n <= perKey; n++) for (const k of keys) out.push({ k, n });
  return out;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The sequence numbers each key reached the sink in. */
function byKey(list: Message[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const m of list) {
    const p = m.payload as Item;
    (out[p.k] ??= []).push(p.n);
  }
  return out;
}
const ascending = (xs: number[]): boolean => xs.every((x, i) => i === 0 || x > (xs[i - 1] as number));

// Later batches are quicker than earlier ones: without per-key order they overtake them.
function slowerFirst(batchSize: number): void {
  let active = 0;
  hooks.set('slow', async (m: Message) => {
    active++;
    maxActive = Math.max(maxActive, active);
    const p = m.payload as Item;
    await sleep(Math.max(0, 100 - 25 * Math.floor((p.n - 1) / batchSize)));
    active--;
    return m;
  });
}
let maxActive = 0;

beforeEach(() => {
  resetMemory();
  hooks.clear();
  maxActive = 0;
});

describe('flow: per-key order', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });
  /** Runs the flow until its source is exhausted and everything settled. */
  const runFlow = async (flow: string): Promise<TestEngine> => {
    const t = await engineFromYaml(spec(flow), registry);
    close = t.close;
    t.engine.start();
    await t.engine.done();
    return t;
  };

  it('without it, later messages of a key overtake earlier ones (concurrency > 1)', async () => {
    feed('src', items(['a'], 8));
    slowerFirst(2);
    await runFlow('source: { memory: { name: src } }\nbatchSize: 2\nconcurrency: 4\nsteps: [ { test: slow } ]\nsink: { memory: { name: out } }');
    expect(ascending(byKey(receivedBy('out'))['a'] ?? [])).toBe(false);
  });

  it('with order: key, each key reaches the sink in arrival order while keys run concurrently', async () => {
    feed('src', items(['a', 'b', 'c'], 8));
    slowerFirst(1);
    const t = await runFlow('source: { memory: { name: src, keyField: k } }\nbatchSize: 2\nconcurrency: 4\norder: key\nsteps: [ { test: slow } ]\nsink: { memory: { name: out } }');
    const seen = byKey(receivedBy('out'));
    expect(seen).toEqual({ a: [1, 2, 3, 4, 5, 6, 7, 8], b: [1, 2, 3, 4, 5, 6, 7, 8], c: [1, 2, 3, 4, 5, 6, 7, 8] });
    expect(maxActive).toBeGreaterThan(1);
    expect(t.engine.stats()['f']).toEqual({ in: 24, out: 24, failed: 0, deadLettered: 0, filtered: 0 });
    expect(outcomesOf('src').flatMap((o) => o.outcomes)).toEqual(Array.from({ length: 24 }, () => Outcome.Delivered));
  });

  it('orders by an orderBy expression', async () => {
    feed('src', items(['x', 'y'], 6));
    slowerFirst(1);
    await runFlow('source: { memory: { name: src } }\nbatchSize: 1\nconcurrency: 4\norderBy: k\nsteps: [ { test: slow } ]\nsink: { memory: { name: out } }');
    expect(byKey(receivedBy('out'))).toEqual({ x: [1, 2, 3, 4, 5, 6], y: [1, 2, 3, 4, 5, 6] });
  });

  it('a message being retried holds back the later ones of its key, not other keys', async () => {
    feed('src', items(['a', 'b'], 3));
    let fails = 2;
    hooks.set('out', (m: Message) => {
      const p = m.payload as Item;
      if (p.k === 'a' && p.n === 2 && fails-- > 0) throw new Error('temporarily down');
    });
    const t = await runFlow('source: { memory: { name: src, keyField: k } }\nbatchSize: 2\nconcurrency: 4\norder: key\nsink: { memory: { name: out } }\nerrors: { retry: { attempts: 5, initial: 200ms, max: 200ms, jitter: false } }');
    const got = receivedBy('out').map((m) => `${(m.payload as Item).k}${(m.payload as Item).n}`);
    expect(byKey(receivedBy('out'))).toEqual({ a: [1, 2, 3], b: [1, 2, 3] });
    // b went on while a2 waited for its retries.
    expect(got.indexOf('b3')).toBeLessThan(got.indexOf('a2'));
    expect(t.engine.stats()['f']).toMatchObject({ in: 6, out: 6, failed: 2, deadLettered: 0 });
  });

  it('a message dead-lettered in the middle of its key settles before the next one runs', async () => {
    feed('src', items(['a', 'b'], 4));
    const log: string[] = [];
    hooks.set('out', (m: Message) => {
      const p = m.payload as Item;
      log.push(`${p.k}${p.n}`);
      if (p.k === 'a' && p.n === 2) throw new Error('always down');
      if (p.k === 'b' && p.n === 3) throw permanent('rejected');
    });
    const t = await runFlow('source: { memory: { name: src, keyField: k } }\nbatchSize: 3\nconcurrency: 3\norder: key\nsink: { memory: { name: out } }\nerrors: { retry: { attempts: 3, initial: 20ms, max: 20ms, jitter: false } }');
    expect(byKey(receivedBy('out'))).toEqual({ a: [1, 3, 4], b: [1, 2, 4] });
    // Every attempt of a2 came before a3 was tried.
    expect(log.filter((x) => x === 'a2')).toHaveLength(3);
    expect(log.lastIndexOf('a2')).toBeLessThan(log.indexOf('a3'));
    expect(log.indexOf('b3')).toBeLessThan(log.indexOf('b4'));
    const dead = await t.store.listDeadLetters();
    expect(dead.map((d) => (d.message.payload as Item).k + String((d.message.payload as Item).n)).sort()).toEqual(['a2', 'b3']);
    expect(dead.find((d) => (d.message.payload as Item).k === 'a')).toMatchObject({ attempts: 3 });
    const s = t.engine.stats()['f'];
    expect(s).toMatchObject({ in: 8, out: 6, deadLettered: 2 });
    expect(outcomesOf('src').flatMap((o) => o.outcomes)).toEqual([1, 1, 2, 1, 1, 2, 1, 1].map((x) => x as Outcome));
  });

  it('filtered messages release their key at once; messages without a key are not held back', async () => {
    feed('src', [{ k: 'a', n: 1 }, { n: 2 }, { k: 'a', n: 3, drop: true }, { k: 'a', n: 4 }, { n: 5 }]);
    hooks.set('drop', (m: Message) => ((m.payload as { drop?: boolean }).drop ? null : m));
    const t = await runFlow('source: { memory: { name: src, keyField: k } }\nbatchSize: 2\nconcurrency: 2\norder: key\nsteps: [ { test: drop } ]\nsink: { memory: { name: out } }');
    expect(receivedBy('out').map((m) => (m.payload as Item).n).sort()).toEqual([1, 2, 4, 5]);
    expect(t.engine.stats()['f']).toMatchObject({ in: 5, out: 4, filtered: 1 });
  });

  it('reports a bad orderBy expression at its place in the spec', async () => {
    await expect(engineFromYaml(spec('source: { memory: { name: src } }\norderBy: "k +"\nsink: { memory: { name: out } }'), registry)).rejects.toThrow(/orderBy|:\d+:\d+/);
  });
});
