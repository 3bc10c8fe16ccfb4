import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import { startIx } from '../../testing/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ix-deliveries-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function ix(args: string[]): Promise<{ code: number | string; out: string }> {
  const r = startIx(args, { cwd: dir });
  const code = await r.exited;
  return { code, out: r.stdout() };
}

describe('ix deliveries', () => {
  it('lists the attempts of a message with status, latency, outcome, excerpt and next time; pages; prints JSON', async () => {
    const path = join(dir, 'state.db');
    const store = new SqliteStore(path);
    const t = Date.UTC(2026, 10, 22, 3, 40, 48);
    await store.recordDeliveryAttempts([
      { flow: 'hooks', outbox: 'outbox:hooks:hooks.sink', messageId: 'evt_42', attempt: 1, url: 'https://x/h', at: t, status: 503, latencyMs: 16.2, outcome: 'retry', responseExcerpt: 'busy\nnow', nextAt: t + 60_000 },
      { flow: 'other', outbox: 'outbox:other:other.sink', messageId: 'evt_7', attempt: 1, url: 'https://y/h', at: t + 1, latencyMs: 15_000, outcome: 'retry', error: 'timed out after 15000 ms', nextAt: t + 60_001 },
      { flow: 'hooks', outbox: 'outbox:hooks:hooks.sink', messageId: 'evt_42', attempt: 2, url: 'https://x/h', at: t + 61_000, status: 200, latencyMs: 8, outcome: 'delivered', responseExcerpt: 'thanks' },
    ]);
    await store.close();
    const url = `sqlite:${path}`;

    const table = await ix(['deliveries', '--store', url, '--message', 'evt_42']);
    expect(table.code).toBe(0);
    const lines = table.out.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+WHEN\s+FLOW\s+MESSAGE\s+TRY\s+STATUS\s+MS\s+OUTCOME\s+DETAIL$/);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^1\s+2026-11-22T03:40:48\.000Z\s+hooks\s+evt_42\s+1\s+503\s+16\s+retry\s+busy now \(next 2026-11-22T03:41:48\.000Z\)$/);
    expect(lines[2]).toMatch(/^3\s+2026-11-22T03:41:49\.000Z\s+hooks\s+evt_42\s+2\s+200\s+8\s+delivered\s+thanks$/);

    const json = await ix(['deliveries', '--store', url, '--flow', 'other', '--json']);
    expect(json.out.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      expect.objectContaining({ id: 2, messageId: 'evt_7', outcome: 'retry', error: 'timed out after 15000 ms', latencyMs: 15_000 }),
    ]);
    const page = await ix(['deliveries', '--store', url, '--after', '1', '--limit', '1', '--json']);
    expect(page.out.trim().split('\n').map((l) => (JSON.parse(l) as { id: number }).id)).toEqual([2]);
    expect((await ix(['deliveries', '--store', url, '--message', 'nope'])).out).toBe('no delivery attempts\n');
  });
});
