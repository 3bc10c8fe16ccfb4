import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistry } from '../../app/registry.js';
import type { Message } from '../../core/message.js';
import { engineFromYaml } from '../../testing/harness.js';
import { hooks, registerMemory } from '../../testing/memory.js';
import { serviceAvailable } from '../../testing/services.js';

const URL = 'redis://127.0.0.1:6379';
const registry = registerMemory(createRegistry());

async function until(pred: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!serviceAvailable('redis'))('redis stream → engine → redis stream: per-key order', () => {
  let r: Redis;
  beforeAll(() => {
    r = new Redis(URL);
  });
  afterAll(async () => {
    await r.quit();
  });

  it('keeps each key in arrival order with concurrency 4 and messages that finish out of order', async () => {
    const input = `ix-order-in-${randomUUID().slice(0, 8)}`;
    const output = `ix-order-out-${randomUUID().slice(0, 8)}`;
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
    const perKey = 40;
    // Uneven work: later messages often finish before earlier ones.
    hooks.set('jitter', async (m: Message) => {
      await new Promise((res) => setTimeout(res, Math.floor(Math.random() * 15)));
      return m;
    });
    const p = r.pipeline();
    for (let n = 0; n < perKey; n++) for (const k of keys) p.xadd(input, '*', 'payload', JSON.stringify({ k, n }), 'ix-id', `${input}-${k}-${n}`, 'ix-key', k);
    await p.exec();
    const yaml = `version: 1
flows:
  f:
    source: { redis-stream: { url: "${URL}", stream: ${input}, group: ix, block: 100ms } }
    batchSize: 7
    concurrency: 4
    order: key
    steps: [ { test: jitter } ]
    sink: { redis-stream: { url: "${URL}", stream: ${output} } }
`;
    const t = await engineFromYaml(yaml, registry);
    try {
      t.engine.start();
      await until(async () => (await r.xlen(output)) >= keys.length * perKey, 60_000, 'every message at the output');
      const entries = (await r.xrange(output, '-', '+')) as [string, string[]][];
      const seen: Record<string, number[]> = {};
      for (const [, f] of entries) {
        const { k, n } = JSON.parse(f[f.indexOf('payload') + 1] as string) as { k: string; n: number };
        expect(f[f.indexOf('ix-key') + 1]).toBe(k);
        (seen[k] ??= []).push(n);
      }
      const want = Array.from({ length: perKey }, (_, i) => i);
      for (const k of keys) expect(seen[k], k).toEqual(want);
      expect(t.engine.stats()['f']).toMatchObject({ in: keys.length * perKey, out: keys.length * perKey });
    } finally {
      await t.close();
      await r.del(input, output);
    }
  }, 120_000);
});
