import type { Static, TSchema } from '@sinclair/typebox';
import type { ComponentContext, Sink, Source, Step } from '../core/component.js';

export type ComponentSlot = 'source' | 'step' | 'sink';

/** What a component's `check` sees: where it sits and the spec's shared resources. */
export type CheckContext = Pick<ComponentContext, 'name' | 'flow' | 'baseDir' | 'logger' | 'resources'>;

/** Something a component's `check` found wrong with its config, at a field of it. */
export interface ConfigProblem {
  /** Where in the component's config, e.g. `['path']`; `[]` for the component as a whole. */
  readonly field: readonly (string | number)[];
  readonly error: Error;
}

/**
 * One declaration per component: its kind, prose, config schema, examples and factory. The
 * spec's JSON Schema, the TypeScript config type, validation and the reference docs all come
 * from it.
 */
export interface ComponentDef<S extends TSchema, T> {
  readonly kind: string;
  /** One line. */
  readonly summary: string;
  /** Paragraphs of Markdown for the reference docs. */
  readonly description?: string;
  readonly config: S;
  /** YAML snippets of the component's config (the value under its kind). */
  readonly examples?: readonly { title: string; yaml: string }[];
  /**
   * Checks the config against the world before anything starts (an input file exists …):
   * `ix check` and `ix run` call it for every component of the spec before any flow is built,
   * and refuse the spec on any problem, each reported at its field's file:line:col. A thrown
   * error is reported at the component.
   */
  check?(config: Static<S>, ctx: CheckContext): readonly ConfigProblem[] | void | Promise<readonly ConfigProblem[] | void>;
  create(config: Static<S>, ctx: ComponentContext): T | Promise<T>;
}

/**
 * Where a source runs when several workers share one store (PostgreSQL):
 * - `every-worker`: on each worker — push sources behind a load balancer, broker consumer
 *   groups and durable consumers, which share the traffic themselves;
 * - `leader`: on one worker at a time, which holds the lease `source:<flow>` and hands it over
 *   when it dies — pollers, files, generators, change capture: whatever reads from a
 *   checkpoint would otherwise be read once per worker.
 * On a store one process owns (SQLite) every source simply runs.
 */
export type SourceCluster = 'every-worker' | 'leader';

export interface SourceDef<S extends TSchema = TSchema> extends ComponentDef<S, Source> {
  /** @defaultValue `leader` — the safe choice for a source that does not share its traffic itself. */
  readonly cluster?: SourceCluster | ((config: Static<S>) => SourceCluster);
  /** With a `cluster` function: one sentence for the reference docs on when it runs where. */
  readonly clusterDoc?: string;
}
export type StepDef<S extends TSchema = TSchema> = ComponentDef<S, Step>;
export type SinkDef<S extends TSchema = TSchema> = ComponentDef<S, Sink>;

export function defineSource<S extends TSchema>(def: SourceDef<S>): SourceDef<S> {
  return def;
}
export function defineStep<S extends TSchema>(def: StepDef<S>): StepDef<S> {
  return def;
}
export function defineSink<S extends TSchema>(def: SinkDef<S>): SinkDef<S> {
  return def;
}

/**
 * A top-level section of the spec that holds named, shared resources (`services:`,
 * `mappings:`): each entry is validated against `entry` and built once per engine; components
 * look them up through `ctx.resources`.
 */
export interface SectionDef<S extends TSchema = TSchema, T = unknown> {
  readonly key: string;
  readonly summary: string;
  readonly description?: string;
  /** Schema of one named entry. */
  readonly entry: S;
  build(name: string, config: Static<S>, ctx: SectionContext): T | Promise<T>;
  close?(resource: T): Promise<void>;
}

export interface SectionContext {
  readonly logger: ComponentContext['logger'];
  readonly clock: ComponentContext['clock'];
  readonly baseDir: string;
  readonly resources: ComponentContext['resources'];
  /**
   * Shared rate limits: the engine passes its Store here (GCRA, held across processes). When
   * absent, sections fall back to in-process limits.
   */
  readonly rates?: { acquireRate(key: string, limit: { count: number; perMs: number; burst?: number }): Promise<number> };
}

export function defineSection<S extends TSchema, T>(def: SectionDef<S, T>): SectionDef<S, T> {
  return def;
}

/** Everything the spec can name: components by slot and kind, and resource sections. */
export class Registry {
  readonly sources = new Map<string, SourceDef>();
  readonly steps = new Map<string, StepDef>();
  readonly sinks = new Map<string, SinkDef>();
  readonly sections = new Map<string, SectionDef>();

  registerSection<S extends TSchema, T>(def: SectionDef<S, T>): this {
    if (this.sections.has(def.key)) throw new TypeError(`section "${def.key}" is already registered`);
    this.sections.set(def.key, def as unknown as SectionDef);
    return this;
  }

  registerSource<S extends TSchema>(def: SourceDef<S>): this {
    return this.add(this.sources, 'source', def as unknown as SourceDef);
  }
  registerStep<S extends TSchema>(def: StepDef<S>): this {
    return this.add(this.steps, 'step', def as unknown as StepDef);
  }
  registerSink<S extends TSchema>(def: SinkDef<S>): this {
    return this.add(this.sinks, 'sink', def as unknown as SinkDef);
  }

  slot(slot: ComponentSlot): ReadonlyMap<string, ComponentDef<TSchema, unknown>> {
    if (slot === 'source') return this.sources;
    if (slot === 'step') return this.steps;
    return this.sinks;
  }

  /** A copy that further registrations do not touch (e.g. per test). */
  clone(): Registry {
    const r = new Registry();
    for (const d of this.sources.values()) r.registerSource(d);
    for (const d of this.steps.values()) r.registerStep(d);
    for (const d of this.sinks.values()) r.registerSink(d);
    for (const d of this.sections.values()) r.registerSection(d);
    return r;
  }

  private add<D extends { kind: string }>(map: Map<string, D>, slot: ComponentSlot, def: D): this {
    if (!/^[a-z][a-z0-9-]*$/.test(def.kind)) {
      throw new TypeError(`${slot} kind "${def.kind}" must be lower-case letters, digits and dashes`);
    }
    if (map.has(def.kind)) throw new TypeError(`${slot} kind "${def.kind}" is already registered`);
    map.set(def.kind, def);
    return this;
  }
}
