/** The TypeScript API for embedding Interchange and writing components. */
export * from './core/index.js';
export { Registry, defineSource, defineStep, defineSink, defineSection } from './registry/registry.js';
export type { CheckContext, ComponentDef, ConfigProblem, SourceDef, StepDef, SinkDef, SectionDef } from './registry/registry.js';
export { DurationType, RateType, SizeType } from './registry/types.js';
export { buildSpecSchema } from './registry/schema.js';
export { loadSpecFile, loadSpecText, type LoadedSpec } from './spec/load.js';
export { SpecError, type SpecProblem } from './spec/problem.js';
export type { Spec, FlowSpec } from './spec/types.js';
export type { Store } from './store/types.js';
export { SqliteStore } from './store/sqlite/sqlite-store.js';
export { Engine } from './engine/engine.js';
export { createRegistry } from './app/registry.js';
export { startApp, type App, type AppOptions } from './app/app.js';
export { openStore } from './app/store.js';
