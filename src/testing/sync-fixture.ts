import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { RecordsApi } from './sync-api.js';

export interface ContactsFixture {
  readonly dir: string;
  readonly spec: string;
  readonly api: RecordsApi;
}

/**
 * A sync test's directory: a started API with records 1..count, an empty SQLite table
 * `contacts (id, name, updated_at)` in dst.db to copy them into, and spec.yaml as `spec`
 * writes it from the API's base URL.
 */
export async function contactsFixture(prefix: string, count: number, spec: (base: string, dir: string) => string): Promise<ContactsFixture> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const api = new RecordsApi();
  for (let i = 1; i <= count; i++) api.put(i);
  const base = await api.start();
  const db = new Database(join(dir, 'dst.db'));
  db.exec('CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT NOT NULL)');
  db.close();
  const file = join(dir, 'spec.yaml');
  writeFileSync(file, spec(base, dir));
  return { dir, spec: file, api };
}
