import type { Registry } from '../registry/registry.js';
import { aggregateStep } from './steps/aggregate.js';
import { dedupeStep } from './steps/dedupe.js';
import { filterStep } from './steps/filter.js';
import { mappingsSection, mapStep } from './steps/map.js';
import { routeSink } from './steps/route.js';
import { splitStep } from './steps/split.js';
import { validateStep } from './steps/validate.js';

export { compileExpression, compileTemplate, parseExpression, FUNCTIONS, LIMITS, FORBIDDEN_KEYS } from './expression/index.js';
export type { CompileOptions, Expression, ExpressionContext, Template } from './expression/index.js';
export { buildMapping, compileMapping, interpretMapping, planFor, type CompiledMapping } from './mapping/index.js';
export { mapMessage, MAPPINGS_SECTION } from './steps/map.js';

/** Registers the transformation steps and the `mappings` section. */
export function registerTransforms(registry: Registry): void {
  registry.registerSection(mappingsSection);
  registry.registerStep(mapStep);
  registry.registerStep(filterStep);
  registry.registerStep(validateStep);
  registry.registerStep(splitStep);
  registry.registerStep(dedupeStep);
  registry.registerStep(aggregateStep);
  registry.registerSink(routeSink(registry));
}
