import { isAbsolute, resolve } from 'node:path';
import type { Clock } from '../core/clock.js';
import { IxError } from '../core/errors.js';
import { isPostgresUrl, PostgresStore } from '../store/postgres/index.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import type { Store } from '../store/types.js';

export const DEFAULT_STORE = 'sqlite:.interchange/state.db';

/**
 * Opens the store a URL names: `sqlite:PATH` (relative to `baseDir`; `?sync=normal` trades
 * power-loss durability for speed) or a path ending in .db / .sqlite; or `postgres://…`
 * (`?schema=NAME&pool=N`), shared by several `ix run` processes (docs/scale-out.md).
 */
export async function openStore(url: string, baseDir: string, clock?: Clock): Promise<Store> {
  if (isPostgresUrl(url)) return PostgresStore.open({ url, ...(clock ? { clock } : {}) });
  if (url.startsWith('sqlite:') || /\.(db|sqlite3?)$/i.test(url)) {
    const rest = url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : url;
    const [pathPart, query] = rest.split('?', 2) as [string, string | undefined];
    const params = new URLSearchParams(query ?? '');
    const path = pathPart === ':memory:' ? pathPart : isAbsolute(pathPart) ? pathPart : resolve(baseDir, pathPart);
    const sync = params.get('sync');
    return new SqliteStore(path, { ...(clock ? { clock } : {}), synchronous: sync === 'normal' ? 'normal' : 'full' });
  }
  throw new IxError('IX_STORE_URL', { url: redactUrl(url) });
}

/** A store URL as it may be printed: without a password. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:[REDACTED]@');
}
