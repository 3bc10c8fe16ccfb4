import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Fifo } from './fifo.js';

type Op = { op: 'push'; n: number } | { op: 'take'; n: number } | { op: 'drain' } | { op: 'retain'; mod: number };

const ops = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant('push' as const), n: fc.integer({ min: 1, max: 3000 }) }),
    fc.record({ op: fc.constant('take' as const), n: fc.integer({ min: -2, max: 2500 }) }),
    fc.record({ op: fc.constant('drain' as const) }),
    fc.record({ op: fc.constant('retain' as const), mod: fc.integer({ min: 1, max: 5 }) }),
  ),
  { maxLength: 40 },
);

describe('Fifo', () => {
  it('behaves as an array taken from the front, across compactions', () => {
    fc.assert(
      fc.property(ops, (script: Op[]) => {
        const fifo = new Fifo<number>();
        let model: number[] = [];
        let next = 0;
        for (const s of script) {
          if (s.op === 'push') {
            for (let i = 0; i < s.n; i++) {
              fifo.push(next);
              model.push(next++);
            }
          } else if (s.op === 'take') {
            expect(fifo.take(s.n)).toEqual(model.splice(0, Math.max(0, s.n)));
          } else if (s.op === 'drain') {
            expect(fifo.drain()).toEqual(model.splice(0));
          } else {
            fifo.retain((x) => x % s.mod !== 0);
            model = model.filter((x) => x % s.mod !== 0);
          }
          expect(fifo.length).toBe(model.length);
          expect([...fifo]).toEqual(model);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('takes nothing from an empty queue', () => {
    const fifo = new Fifo<string>();
    expect(fifo.take(5)).toEqual([]);
    expect(fifo.drain()).toEqual([]);
    expect(fifo.length).toBe(0);
  });
});
