import type { CompileEnv } from '../expression/runtime.js';
import { compileMapping, type CompiledMapping, type MappingResolver } from './compile.js';
import type { MappingConfig } from './config.js';
import { loadLookups, type LookupSpec } from './lookups.js';
import { planMapping, type MappingPlan } from './plan.js';

export { compileMapping, type CompiledMapping, type MappingResolver } from './compile.js';
export { MappingConfig, FieldRow } from './config.js';
export { interpretMapping } from './reference.js';
export { planMapping, parsePath, type MappingPlan, type RowPlan } from './plan.js';
export { parseCsv } from './lookups.js';

export interface BuildMappingOptions {
  /** Where lookup files resolve; the spec's directory. */
  readonly baseDir?: string;
  /** Finds mappings that `each` names (the `mappings:` section). */
  readonly resolve?: MappingResolver;
  readonly now?: CompileEnv['now'];
}

/** Checks, loads lookups for, plans and compiles a mapping: done once per spec. */
export function buildMapping(name: string, config: unknown, options: BuildMappingOptions = {}): CompiledMapping {
  return compileMapping(planFor(name, config, options), options.resolve);
}

/** The checked plan (with lookups loaded), e.g. for the reference interpreter. */
export function planFor(name: string, config: unknown, options: BuildMappingOptions = {}): MappingPlan {
  const raw = (config ?? {}) as Partial<MappingConfig>;
  const lookups = loadLookups(name, raw.lookups as Record<string, LookupSpec> | undefined, options.baseDir ?? process.cwd());
  return planMapping(name, config, { lookups, ...(options.now ? { now: options.now } : {}) });
}
