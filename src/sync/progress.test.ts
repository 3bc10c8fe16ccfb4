import { describe, expect, it } from 'vitest';
import type { Logger } from '../core/logger.js';
import { Progress, progressLine } from './progress.js';

describe('sync progress', () => {
  it('draws records, rate and an ETA when the total is known', () => {
    const line = progressLine('customers', { read: 50_000, written: 49_000, total: 100_000, done: false, startedAt: 0 }, 10_000, 10);
    expect(line).toBe('customers         [#####.....]   50%  50.0k/100.0k  49.0k written  5000 rec/s  ETA 10s');
    expect(progressLine('orders', { read: 1200, written: 1200, done: true, startedAt: 0 }, 2000, 10)).toBe('orders            1200 read  1200 written  600 rec/s  done');
  });

  it('logs progress events at most every interval per stream, and at the end', () => {
    const events: Record<string, unknown>[] = [];
    const logger = { info: (o: Record<string, unknown>) => events.push(o), child: () => logger } as unknown as Logger;
    let now = 0;
    const p = new Progress({ job: 'crm', logger, logEveryMs: 1000, now: () => now });
    p.update('a', { read: 10, written: 10, done: false });
    now = 500;
    p.update('a', { read: 20, written: 20, done: false });
    now = 1200;
    p.update('a', { read: 30, written: 30, total: 40, done: false });
    now = 1300;
    p.update('a', { read: 40, written: 40, done: true });
    p.stop();
    expect(events.map((e) => [e['read'], e['total'], e['done']])).toEqual([
      [30, 40, false],
      [40, 40, true],
    ]);
  });
});
