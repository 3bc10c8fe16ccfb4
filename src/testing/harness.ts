import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../core/clock.js';
import type { HttpRegistrar } from '../core/component.js';
import { Engine } from '../engine/engine.js';
import type { Registry } from '../registry/registry.js';
import { loadSpecText } from '../spec/load.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import type { Store } from '../store/types.js';

export interface TestEngine {
  readonly engine: Engine;
  readonly store: Store;
  readonly dir: string;
  close(): Promise<void>;
}

/** Builds an engine from spec text in a fresh temp folder, on a fresh SQLite store. */
export async function engineFromYaml(
  yaml: string,
  registry: Registry,
  options: { clock?: Clock; store?: Store; http?: HttpRegistrar; dir?: string; pollMs?: number; sourceLeaseMs?: number } = {},
): Promise<TestEngine> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'ix-test-'));
  const loaded = loadSpecText(yaml, join(dir, 'spec.yaml'), registry, { env: {} });
  const store = options.store ?? new SqliteStore(join(dir, 'state.db'), { ...(options.clock ? { clock: options.clock } : {}), synchronous: 'normal' });
  const engine = await Engine.build({
    loaded,
    registry,
    store,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.http ? { http: options.http } : {}),
    pollMs: options.pollMs ?? 50,
    ...(options.sourceLeaseMs !== undefined ? { sourceLeaseMs: options.sourceLeaseMs } : {}),
  });
  return {
    engine,
    store,
    dir,
    close: async () => {
      await engine.stop(1000);
      await store.close();
    },
  };
}
