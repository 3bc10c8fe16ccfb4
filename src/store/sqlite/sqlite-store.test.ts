import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { storeContract } from '../contract.js';
import { sqliteMigrations } from './migrations.js';
import { SqliteStore } from './sqlite-store.js';

const dir = mkdtempSync(join(tmpdir(), 'ix-sqlite-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

storeContract('sqlite', async (clock) => new SqliteStore(join(dir, `s${n++}.db`), { clock }));

describe('SqliteStore migrations', () => {
  it('refuses a database newer than the code', async () => {
    const path = join(dir, 'newer.db');
    const s = new SqliteStore(path);
    await s.close();
    const db = new Database(path);
    db.prepare('INSERT INTO ix_migrations (version, name, applied_at) VALUES (99, ?, 0)').run('future');
    db.close();
    expect(() => new SqliteStore(path)).toThrow(/store schema version 99 is newer than this engine knows \(4\)/);
  });

  it('applies migrations once', async () => {
    const path = join(dir, 'twice.db');
    await new SqliteStore(path).close();
    const s = new SqliteStore(path);
    await s.setCheckpoint('k', 'v');
    await s.close();
    const db = new Database(path);
    expect((db.prepare('SELECT COUNT(*) AS n FROM ix_migrations').get() as { n: number }).n).toBe(4);
    db.close();
  });
});

describe('SqliteStore durable enqueue', () => {
  const msg = (id: string) => ({ id, payload: { id }, headers: {}, meta: {} });

  it('resolves concurrent enqueues after the WAL is synced, across checkpoints, and keeps every one', async () => {
    const path = join(dir, 'group-sync.db');
    const s = new SqliteStore(path);
    const first = await Promise.all(Array.from({ length: 200 }, (_, i) => s.enqueue('inbox:f', [{ message: msg(`a${i}`) }], { dedupeTtlMs: 60_000 })));
    expect(first.every((r) => r.inserted === 1)).toBe(true);
    // another connection checkpoints and truncates the WAL under the open store
    const other = new Database(path);
    other.pragma('wal_checkpoint(TRUNCATE)');
    other.close();
    const second = await Promise.all(Array.from({ length: 200 }, (_, i) => s.enqueue('inbox:f', [{ message: msg(`b${i}`) }, { message: msg(`a${i}`) }], { dedupeTtlMs: 60_000 })));
    expect(second.map((r) => r.insertedFlags)).toEqual(Array.from({ length: 200 }, () => [true, false]));
    await s.close();
    const db = new Database(path, { readonly: true });
    expect((db.prepare("SELECT COUNT(*) AS n FROM queue_items WHERE queue = 'inbox:f'").get() as { n: number }).n).toBe(400);
    db.close();
  });
});

describe('SqliteStore dedupe keys', () => {
  const msg = (id: string) => ({ id, payload: { id }, headers: {}, meta: {} });

  it('keeps the key of a completed item across a restart', async () => {
    const path = join(dir, 'dedupe-restart.db');
    const s = new SqliteStore(path);
    await s.enqueueLeased('inbox:f', 'w', [{ message: msg('a') }], { leaseMs: 60_000, dedupeTtlMs: 60_000 });
    await s.complete('inbox:f', 'w', ['a']);
    await s.close();
    const again = new SqliteStore(path);
    expect((await again.enqueue('inbox:f', [{ message: msg('a') }, { message: msg('b') }], { dedupeTtlMs: 60_000 })).insertedFlags).toEqual([false, true]);
    await again.close();
  });

  it('an item taken in by a store before version 4 (its key written at enqueue) stays deduplicated after the upgrade', async () => {
    const path = join(dir, 'dedupe-upgrade.db');
    // a version 3 database, and what version 3 wrote for an enqueue with a window: the key, then the row
    const db = new Database(path);
    db.exec('CREATE TABLE ix_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    for (const m of sqliteMigrations.filter((x) => x.version <= 3)) {
      db.exec(m.sql);
      db.prepare('INSERT INTO ix_migrations (version, name, applied_at) VALUES (?, ?, 0)').run(m.version, m.name);
    }
    const now = Date.now();
    db.prepare('INSERT INTO idempotency_keys (scope, key, expires_at) VALUES (?, ?, ?)').run('inbox:f', 'a', now + 60_000);
    db.prepare('INSERT INTO queue_items (queue, id, message, available_at, enqueued_at) VALUES (?, ?, ?, ?, ?)').run('inbox:f', 'a', JSON.stringify(msg('a')), now, now);
    db.close();
    const s = new SqliteStore(path);
    expect((await s.claim('inbox:f', 'w', { limit: 10, leaseMs: 60_000 })).map((i) => i.message.id)).toEqual(['a']);
    await s.complete('inbox:f', 'w', ['a']);
    expect((await s.enqueue('inbox:f', [{ message: msg('a') }], { dedupeTtlMs: 60_000 })).insertedFlags).toEqual([false]);
    await s.close();
  });
});
