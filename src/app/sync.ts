import { Engine } from '../engine/engine.js';
import { releaseHoldingsOfGoneProcesses } from './app.js';
import type { Logger } from '../core/logger.js';
import { createLogger } from '../observability/logger.js';
import { loadSpecFile, type LoadedSpec } from '../spec/load.js';
import type { Store } from '../store/types.js';
import { SyncService } from '../sync/service.js';
import { createRegistry } from './registry.js';
import { DEFAULT_STORE, openStore } from './store.js';
import { systemClock } from '../core/clock.js';

export interface OpenedSync {
  readonly loaded: LoadedSpec;
  readonly service: SyncService;
  readonly store: Store;
  readonly logger: Logger;
  close(): Promise<void>;
}

/** Opens a spec's syncs without starting its flows (for `ix sync run|status`). */
export async function openSync(o: { specFile: string; store?: string; logLevel?: string; env?: Readonly<Record<string, string | undefined>> }): Promise<OpenedSync> {
  const registry = createRegistry();
  const loaded = loadSpecFile(o.specFile, registry, o.env ? { env: o.env } : {});
  const logger = createLogger({ secrets: loaded.secretValues, ...(o.logLevel ? { level: o.logLevel } : {}) });
  const store = await openStore(o.store ?? loaded.spec.store ?? DEFAULT_STORE, loaded.baseDir);
  let engine: Engine;
  try {
    // an `ix sync run` SIGKILLed mid-run left its job lease behind: given back at once (SQLite)
    await releaseHoldingsOfGoneProcesses(store, logger);
    // Services and mappings are built as for `ix run`; the flows are not.
    engine = await Engine.build({ loaded: { ...loaded, spec: { ...loaded.spec, flows: [] } }, registry, store, logger });
  } catch (err) {
    await store.close();
    throw err;
  }
  const service = new SyncService({ loaded, registry, store, resources: engine.resources, logger, clock: systemClock, owner: engine.owner });
  return {
    loaded,
    service,
    store,
    logger,
    async close() {
      await service.stop();
      await engine.stop(0);
      await store.close();
    },
  };
}
