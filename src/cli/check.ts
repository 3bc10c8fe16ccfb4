import { createRegistry } from '../app/registry.js';
import { openStore } from '../app/store.js';
import { Engine } from '../engine/engine.js';
import type { Registry } from '../registry/registry.js';
import { loadSpecFile } from '../spec/load.js';
import { formatError } from './output.js';
import { validateSyncReferences } from '../sync/service.js';

export interface CheckResult {
  readonly ok: boolean;
  /** One line per spec that passed. */
  readonly out: string[];
  /** One line per problem: file:line:col: message. */
  readonly problems: string[];
}

/** Validates specs and builds their components (nothing starts): what `ix check` runs. */
export async function checkSpecs(files: readonly string[], makeRegistry: () => Registry = createRegistry): Promise<CheckResult> {
  const out: string[] = [];
  const problems: string[] = [];
  for (const file of files) {
    const registry = makeRegistry();
    let secrets: readonly string[] = [];
    try {
      const loaded = loadSpecFile(file, registry);
      secrets = loaded.secretValues;
      const store = await openStore('sqlite::memory:', loaded.baseDir);
      try {
        const engine = await Engine.build({ loaded, registry, store });
        try {
          validateSyncReferences(loaded, engine.resources);
        } finally {
          await engine.stop(0);
        }
      } finally {
        await store.close();
      }
      const n = loaded.spec.flows.length;
      const j = loaded.spec.syncs.length;
      out.push(`${file}: ok (${n} flow${n === 1 ? '' : 's'}${j > 0 ? `, ${j} sync${j === 1 ? '' : 's'}` : ''})`);
    } catch (err) {
      problems.push(...formatError(err, secrets));
    }
  }
  return { ok: problems.length === 0, out, problems };
}
