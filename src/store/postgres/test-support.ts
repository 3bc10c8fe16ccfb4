import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The local test database (trust auth). Override with IX_TEST_POSTGRES_URL. */
export const TEST_POSTGRES_URL = process.env['IX_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A schema name unique to this run, e.g. `ix_test_3f9a…`. */
export function testSchemaName(prefix = 'ix_test'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** Drops test schemas (and everything in them). */
export async function dropSchemas(schemas: readonly string[], url = TEST_POSTGRES_URL): Promise<void> {
  if (schemas.length === 0) return;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  } finally {
    await client.end();
  }
}
