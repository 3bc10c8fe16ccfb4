import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { runIx } from '../testing/cli.js';

const ix = runIx;

describe('ix endpoints', () => {
  it('lists the webhook endpoints disabled by a 410 (no query or credentials shown) and enables them again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-endpoints-'));
    const path = join(dir, 'state.db');
    const store = new SqliteStore(path);
    await store.setCheckpoint('outbox:orders:orders.sink:disabled:https://hooks.example/in?token=s3cret', JSON.stringify({ at: Date.UTC(2026, 0, 2) }));
    await store.setCheckpoint('outbox:crm:crm.sinks[1]:disabled:https://crm.example/hook', JSON.stringify({ at: Date.UTC(2026, 0, 3) }));
    await store.setCheckpoint('outbox:crm:crm.sinks[1]:fifo', '{}');
    await store.close();
    const url = `sqlite:${path}`;

    const list = await ix(['endpoints', 'list', '--store', url], dir);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^FLOW\s+SINK\s+SINCE\s+URL\n/);
    expect(list.out).toMatch(/crm\s+crm\.sinks\[1\]\s+2026-01-03T00:00:00\.000Z\s+https:\/\/crm\.example\/hook\n/);
    expect(list.out).toMatch(/orders\s+orders\.sink\s+2026-01-02T00:00:00\.000Z\s+https:\/\/hooks\.example\/in\n/);
    expect(list.out).not.toContain('s3cret');
    const json = await ix(['endpoints', 'list', '--store', url, '--flow', 'crm', '--json'], dir);
    expect(json.out.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([{ flow: 'crm', sink: 'crm.sinks[1]', url: 'https://crm.example/hook', since: Date.UTC(2026, 0, 3) }]);

    const none = await ix(['endpoints', 'enable', '--store', url], dir);
    expect(none.code).toBe(1);
    expect(none.err).toContain('name a flow, or --all');
    const enabled = await ix(['endpoints', 'enable', 'orders', '--store', url], dir);
    expect(enabled.out).toBe('enabled orders orders.sink https://hooks.example/in\n');
    expect((await ix(['endpoints', 'enable', 'orders', '--store', url], dir)).out).toBe('no disabled endpoints matched\n');
    expect((await ix(['endpoints', 'enable', '--all', '--store', url], dir)).out).toBe('enabled crm crm.sinks[1] https://crm.example/hook\n');
    expect((await ix(['endpoints', 'list', '--store', url], dir)).out).toBe('no disabled endpoints\n');
    const after = new SqliteStore(path);
    expect(await after.getCheckpoint('outbox:crm:crm.sinks[1]:fifo')).toBe('{}');
    await after.close();
  }, 60_000);
});
