import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../../app/registry.js';
import { permanent } from '../../core/errors.js';
import { engineFromYaml, type TestEngine } from '../../testing/harness.js';
import { feed, hooks, outcomesOf, receivedBy, registerMemory, resetMemory } from '../../testing/memory.js';

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

async function run(sink: string, extra = ''): Promise<TestEngine> {
  t = await engineFromYaml(`version: 1\nflows:\n  f:\n    source: { memory: { name: src } }\n    errors: { retry: { attempts: 2, initial: 1ms, max: 1ms } }\n${extra}    sink:\n${sink}`, registry);
  t.engine.start();
  await t.engine.done();
  return t;
}

const records = [
  { id: 1, region: 'eu', total: 10 },
  { id: 2, region: 'us', total: 500 },
  { id: 3, region: 'apac', total: 5 },
  { id: 4, region: 'eu', total: 900 },
];

describe('route sink', () => {
  it('first match, otherwise, branch steps', async () => {
    feed('src', records);
    const te = await run(`      route:
        routes:
          - { name: eu, when: "region = 'eu'", sink: { memory: { name: eu } } }
          - when: "total > 100"
            steps: [ { map: { fields: [ { from: id, to: big_id } ] } } ]
            sink: { memory: { name: big } }
        otherwise: { sink: { memory: { name: other } } }
`);
    expect(receivedBy('eu').map((m) => m.payload)).toEqual([records[0], records[3]]);
    expect(receivedBy('big').map((m) => m.payload)).toEqual([{ big_id: 2 }]);
    expect(receivedBy('other').map((m) => m.payload)).toEqual([records[2]]);
    expect(te.engine.stats()['f']).toMatchObject({ in: 4, out: 4, deadLettered: 0, filtered: 0 });
  });

  it('all matches, by header too; no match and no otherwise is dead-lettered', async () => {
    feed('src', records);
    const te = await run(`      route:
        mode: all
        routes:
          - { when: "region = 'eu'", sink: { memory: { name: eu } } }
          - { when: "total > 100 or $headers.vip = 'yes'", sink: { memory: { name: big } } }
`);
    expect(receivedBy('eu').map((m) => m.payload)).toEqual([records[0], records[3]]);
    expect(receivedBy('big').map((m) => m.payload)).toEqual([records[1], records[3]]);
    expect(te.engine.stats()['f']).toMatchObject({ in: 4, out: 3, deadLettered: 1 });
    const [dead] = await te.store.listDeadLetters({ flow: 'f' });
    expect(dead?.message.id).toBe('src-3');
    expect(dead?.reason).toMatch(/no branch matched/);
    expect(dead?.attempts).toBe(1);
  });

  it('a failing branch fails only its messages: retried, then dead-lettered naming the branch', async () => {
    feed('src', records);
    let calls = 0;
    hooks.set('big', (m) => {
      calls++;
      if ((m.payload as { id: number }).id === 4) throw permanent('disk full');
      if ((m.payload as { id: number }).id === 2 && calls < 2) throw new Error('flaky');
      return undefined;
    });
    const te = await run(`      route:
        mode: all
        routes:
          - { name: europe, when: "region = 'eu'", sink: { memory: { name: eu } } }
          - { name: large, when: "total > 100", sink: { memory: { name: big } } }
        otherwise: { sink: { memory: { name: other } } }
`);
    expect(receivedBy('big').map((m) => m.payload)).toEqual([records[1]]);
    expect(te.engine.stats()['f']).toMatchObject({ in: 4, out: 3, deadLettered: 1 });
    const [dead] = await te.store.listDeadLetters({ flow: 'f' });
    expect(dead?.message.id).toBe('src-4');
    expect(dead?.reason).toMatch(/branch large: disk full/);
    expect(outcomesOf('src').flatMap((o) => o.outcomes)).toEqual([1, 1, 1, 2]);
  });

  it('checks branch components when the flow is built', async () => {
    feed('src', []);
    await expect(run(`      route:\n        routes: [ { when: "true", sink: { nosuch: {} } } ]\n`)).rejects.toThrow(/unknown sink kind "nosuch"/);
    await expect(run(`      route:\n        routes: [ { when: "a.__proto__", sink: { memory: { name: x } } } ]\n`)).rejects.toThrow(/not allowed/);
    await expect(run(`      route:\n        routes: [ { when: "true", sink: { memory: { nom: x } } } ]\n`)).rejects.toThrow(/memory/);
  });
});
