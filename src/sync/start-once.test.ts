import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { startApp, type App } from '../app/app.js';
import { dropSchemas, TEST_POSTGRES_URL, testSchemaName } from '../store/postgres/test-support.js';
import { serviceAvailable } from '../testing/services.js';
import { contactsFixture, type ContactsFixture } from '../testing/sync-fixture.js';
import type { SyncRunRecord } from './service.js';

/** A job without a schedule (it runs at start), copying the API's records into a SQLite table. */
function fixture(prefix: string, store: (dir: string) => string): Promise<ContactsFixture> {
  return contactsFixture(
    prefix,
    5,
    (base, dir) => `version: 1
store: ${store(dir)}
admin: { enabled: false }
services: { api: { type: rest, baseUrl: "${base}", endpoints: { records: { method: GET, path: /records, paginate: { type: cursor, param: cursor, next: "$.next", items: "$.data" } } } } }
syncs:
  once:
    target: { sqlite: { path: dst.db } }
    streams: { contacts: { from: { http: { service: api, endpoint: records } }, table: contacts, key: id, mode: full } }
`,
  );
}

/** Starts a worker and waits until its run at start ran or was skipped. */
async function worker(spec: string, apps: App[]): Promise<App> {
  const app = await startApp({ specFile: spec, logLevel: 'error' });
  apps.push(app);
  await app.done();
  return app;
}

async function startRuns(app: App): Promise<SyncRunRecord[]> {
  const runs = JSON.parse((await app.store.getCheckpoint('sync-runs/once')) ?? '[]') as SyncRunRecord[];
  return runs.filter((r) => r.trigger === 'start');
}

async function stop(apps: App[], app: App): Promise<void> {
  apps.splice(apps.indexOf(app), 1);
  await app.stop();
}

describe.skipIf(!serviceAvailable('postgres'))('a sync job without a schedule on workers sharing one PostgreSQL store', () => {
  const schema = testSchemaName('ix_sync_once');
  const apps: App[] = [];
  let f: ContactsFixture | undefined;

  afterAll(async () => {
    for (const a of apps.splice(0)) await a.stop();
    await f?.api.stop();
    await dropSchemas([schema]);
    if (f) rmSync(f.dir, { recursive: true, force: true });
  });

  it('runs at start once across the cluster, and again once the whole cluster was down', async () => {
    f = await fixture('ix-sync-once-pg-', () => `${TEST_POSTGRES_URL}?schema=${schema}`);
    const a = await worker(f.spec, apps);
    expect(await startRuns(a)).toHaveLength(1);
    expect((await startRuns(a))[0]?.status).toBe('ok');
    const requests = f.api.requests;
    // Before: each worker that started after the first one's run ended ran the job again.
    const b = await worker(f.spec, apps);
    const c = await worker(f.spec, apps);
    expect(await startRuns(a)).toHaveLength(1);
    expect(f.api.requests).toBe(requests);
    // The worker that ran it stops; the cluster is still up (b and c knew the run): a worker
    // joining now does not run it either.
    await stop(apps, a);
    const d = await worker(f.spec, apps);
    expect(await startRuns(d)).toHaveLength(1);
    for (const w of [b, c, d]) await stop(apps, w);
    // Every worker is gone: the next start runs the job, as a single process does.
    const e = await worker(f.spec, apps);
    expect(await startRuns(e)).toHaveLength(2);
    await stop(apps, e);
    // Three starting at once: one runs it.
    await Promise.all([0, 1, 2].map(() => worker((f as { spec: string }).spec, apps)));
    expect(await startRuns(apps[0] as App)).toHaveLength(3);
    expect((await startRuns(apps[0] as App)).every((r) => r.status === 'ok')).toBe(true);
  }, 120_000);
});

describe('a sync job without a schedule on a SQLite store', () => {
  let f: ContactsFixture | undefined;
  const apps: App[] = [];

  afterAll(async () => {
    for (const a of apps.splice(0)) await a.stop();
    await f?.api.stop();
    if (f) rmSync(f.dir, { recursive: true, force: true });
  });

  it('runs at every start of its one `ix run`, as before', async () => {
    f = await fixture('ix-sync-once-sqlite-', () => 'sqlite:./state.db');
    for (let n = 1; n <= 3; n++) {
      const app = await worker(f.spec, apps);
      expect(await startRuns(app)).toHaveLength(n);
      await stop(apps, app);
    }
    expect(f.api.requests).toBeGreaterThanOrEqual(3);
  }, 60_000);
});
