import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startApp, type App } from '../app/app.js';
import { serviceAvailable } from '../testing/services.js';
import { uniqueName } from '../testing/sql-suite.js';
import { until } from '../testing/poll.js';

const PG_URL = process.env['IX_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = 'redis://127.0.0.1:6379';

const at = (s: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

/** Realtime sync from broker messages: Redis Stream change events applied to PostgreSQL. */
describe.skipIf(!serviceAvailable('postgres') || !serviceAvailable('redis'))('sync: realtime from a Redis stream into PostgreSQL', () => {
  const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const redis = new Redis(REDIS_URL);
  const dir = mkdtempSync(join(tmpdir(), 'ix-sync-broker-'));
  const table = uniqueName('ix_sync_redis');
  const stream = `ix-sync-${randomUUID().slice(0, 8)}`;
  let app: App | undefined;

  afterAll(async () => {
    await app?.stop();
    await redis.del(stream);
    await redis.quit();
    await admin.query(`DROP TABLE IF EXISTS "${table}"`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  });

  const publish = async (events: unknown[]): Promise<void> => {
    const p = redis.pipeline();
    for (const e of events) p.xadd(stream, '*', 'payload', JSON.stringify(e));
    await p.exec();
  };
  const rows = async (): Promise<Map<number, string>> =>
    new Map((await admin.query(`SELECT id, name FROM "${table}" ORDER BY id`)).rows.map((r: { id: number; name: string }) => [r.id, r.name]));

  it('applies inserts, newer updates and deletes, skips older versions, dead-letters a record without its key, acks only what it applied, and resumes after a restart', async () => {
    await admin.query(`CREATE TABLE "${table}" (id integer PRIMARY KEY, name text, updated_at timestamptz NOT NULL)`);
    const spec = join(dir, 'spec.yaml');
    writeFileSync(
      spec,
      `version: 1
store: sqlite:./state.db
admin: { enabled: false }
syncs:
  feed:
    target: { postgres: { url: "${PG_URL}" } }
    streams:
      contacts:
        events: { redis-stream: { url: "${REDIS_URL}", stream: ${stream}, group: ix-sync, block: 200ms } }
        table: ${table}
        key: id
        mode: realtime
        version: updated_at
        conflict: newest-wins
`,
    );
    // Events published before the sync starts are read from the start of the stream.
    await publish(Array.from({ length: 50 }, (_, k) => ({ id: k + 1, name: `n${k + 1}`, updated_at: at(k + 1) })));
    app = await startApp({ specFile: spec, logLevel: 'error' });
    await until('50 rows', async () => (await rows()).size, (n) => n === 50);

    await publish([
      { id: 5, name: 'newer', updated_at: at(100) },
      { id: 6, name: 'older', updated_at: at(0) }, // older than the row: not applied
      { op: 'delete', old: { id: 7 } },
      { name: 'no key', updated_at: at(100) }, // to the DLQ with the reason
      { id: 51, name: 'n51', updated_at: at(51) },
    ]);
    await until('the second batch', async () => (await rows()).has(51), (v) => v);
    const r = await rows();
    expect(r.get(5)).toBe('newer');
    expect(r.get(6)).toBe('n6');
    expect(r.has(7)).toBe(false);
    expect(r.size).toBe(50);
    const dead = await until('the dead letter', () => (app as App).store.countDeadLetters(), (n) => n >= 1);
    expect(dead).toBe(1);
    // Every entry was acknowledged to the group once applied (or dead-lettered): none pending.
    await until('no pending entries', async () => ((await redis.xpending(stream, 'ix-sync')) as [number])[0], (n) => n === 0);

    // Stopped, events keep arriving; started again, the group resumes where it was.
    await app.stop();
    app = undefined;
    await publish([
      { id: 52, name: 'n52', updated_at: at(52) },
      { id: 1, name: 'renamed', updated_at: at(200) },
    ]);
    app = await startApp({ specFile: spec, logLevel: 'error' });
    await until('the events sent while stopped', async () => (await rows()).get(1), (v) => v === 'renamed');
    const after = await rows();
    expect(after.size).toBe(51);
    expect(after.get(52)).toBe('n52');
    expect(after.get(5)).toBe('newer'); // the first events were not applied again over it
  }, 120_000);
});
