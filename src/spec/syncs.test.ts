import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSpecs } from '../cli/check.js';
import { createRegistry } from '../app/registry.js';
import { loadSpecText } from './load.js';
import { SpecError } from './problem.js';

const registry = createRegistry();

function problems(yaml: string): string[] {
  try {
    loadSpecText(yaml, 'sync.yaml', registry, { env: {} });
    return [];
  } catch (err) {
    if (!(err instanceof SpecError)) throw err;
    return err.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
  }
}

const head = `version: 1
syncs:
  crm:
    target: { postgres: { url: "postgres://db/x" } }
    streams:
      contacts:
`;

describe('syncs: in the spec', () => {
  it('accepts a spec with syncs and no flows, with defaults applied', () => {
    const loaded = loadSpecText(`${head}        from: { postgres: { url: "postgres://db/y", table: contacts } }\n        key: [id, region]\n        mode: incremental\n        cursor: updated_at\n`, 'sync.yaml', registry, { env: {} });
    expect(loaded.spec.flows).toEqual([]);
    const s = loaded.spec.syncs[0]?.streams[0];
    expect(s).toMatchObject({ name: 'contacts', table: 'contacts', key: ['id', 'region'], write: 'upsert', vanished: 'delete', conflict: 'source-wins', batchSize: 1000, strict: true });
    expect(loaded.spec.syncs[0]?.concurrency).toBe(4);
  });

  it('reports what each mode needs at file:line:col', () => {
    expect(problems(`${head}        from: { http: { service: s, endpoint: e } }\n        key: id\n        mode: incremental\n`)).toEqual([
      '6:7: syncs.crm.contacts mode incremental needs `cursor` (the field that grows with every change)',
    ]);
    expect(problems(`${head}        key: id\n        mode: realtime\n`)).toEqual(['6:7: syncs.crm.contacts mode realtime needs `events` (where change events come from)']);
    expect(problems(`${head}        from: { http: { service: s, endpoint: e } }\n        key: id\n        mode: full\n        conflict: newest-wins\n`)).toEqual([
      '10:19: syncs.crm.contacts.conflict needs `version`: conflicts are detected by the version the sync last wrote',
    ]);
    expect(problems(`${head}        from: { http: { service: s, endpoint: e } }\n        key: id\n        mode: sometimes\n`)).toEqual([
      '9:15: syncs.crm.streams.contacts.mode must be one of "full", "incremental", "realtime", "backfill-realtime"',
    ]);
    expect(problems(`${head}        from: { ftp: { host: x } }\n        key: id\n        mode: full\n`)[0]).toMatch(/^7:17: unknown sync source kind "ftp"/);
    expect(problems(`version: 1\nsyncs:\n  crm:\n    schedule: "every tuesday"\n    streams:\n      s: { from: { sqlite: { path: a.db, table: t } }, key: id, mode: full, target: { sqlite: { path: b.db } } }\n`)[0]).toMatch(
      /^4:15: syncs.crm.schedule is not a cron expression/,
    );
  });

  it('ix check resolves the services and endpoints a sync names', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-sync-check-'));
    try {
      const file = join(dir, 'spec.yaml');
      const spec = (endpoint: string): string =>
        `version: 1\nservices:\n  crm: { type: rest, baseUrl: "http://127.0.0.1:1", endpoints: { list: { method: GET, path: /x } } }\n${head.replace('version: 1\n', '')}        from: { http: { service: crm, endpoint: ${endpoint} } }\n        key: id\n        mode: full\n`;
      writeFileSync(file, spec('lst'));
      const bad = await checkSpecs([file]);
      expect(bad.problems).toEqual([`${file}:9:34: service "crm" has no endpoint "lst" (known: list)`]);
      writeFileSync(file, spec('list'));
      expect((await checkSpecs([file])).out).toEqual([`${file}: ok (0 flows, 1 sync)`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
