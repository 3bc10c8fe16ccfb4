import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../core/logger.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { releaseHoldingsOfGoneProcesses } from './app.js';

const msg = (id: string) => ({ message: { id, payload: id, headers: {}, meta: {} } });

describe('start-up on SQLite: holdings of a process that is gone', () => {
  it('gives back at once what a stopped process on this machine held, and nothing of a live one or another host', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-gone-'));
    const store = new SqliteStore(join(dir, 'state.db'));
    try {
      const deadPid = spawnSync(process.execPath, ['-e', '0']).pid as number;
      const dead = `${hostname()}:${deadPid}:abcd1234`;
      const live = `${hostname()}:${process.pid}:live0001`;
      const remote = `another-host:${deadPid}:ffff0000`;
      await store.enqueueLeased('inbox:f', dead, [msg('a'), msg('b')], { leaseMs: 600_000 });
      await store.enqueueLeased('outbox:f:f.sink', `${dead}/outbox:f:f.sink:0a0b`, [msg('c')], { leaseMs: 600_000 });
      await store.enqueueLeased('inbox:f', live, [msg('d')], { leaseMs: 600_000 });
      await store.enqueueLeased('inbox:f', remote, [msg('e')], { leaseMs: 600_000 });
      expect(await store.acquireLease('schedule:f', dead, 600_000)).toBe(true);

      await releaseHoldingsOfGoneProcesses(store, silentLogger);

      expect((await store.claim('inbox:f', 'next', { limit: 10, leaseMs: 1000 })).map((i) => i.message.id).sort()).toEqual(['a', 'b']);
      expect((await store.claim('outbox:f:f.sink', 'next', { limit: 10, leaseMs: 1000 })).map((i) => i.message.id)).toEqual(['c']);
      expect((await store.claim('inbox:f', 'other', { limit: 10, leaseMs: 1000 })).map((i) => i.message.id)).toEqual([]); // d (live), e (another host) stay leased
      expect(await store.acquireLease('schedule:f', 'next', 600_000)).toBe(true);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
