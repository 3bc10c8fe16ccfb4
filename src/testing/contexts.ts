import { systemClock, type Clock } from '../core/clock.js';
import type { ComponentContext, HttpRegistrar, PersistOptions, Resources, SinkContext, SourceContext } from '../core/component.js';
import { Persister } from '../engine/persister.js';
import { IxError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import type { Message } from '../core/message.js';
import type { Store } from '../store/types.js';
import { inboxQueue } from '../store/types.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';

const noResources: Resources = {
  get: (section, name) => {
    throw new IxError('IX_SPEC_UNKNOWN_REFERENCE', { ref: `${section}.${name}`, hint: '' });
  },
  has: () => false,
};

export interface TestContextOptions {
  readonly flow?: string;
  readonly name?: string;
  readonly clock?: Clock;
  readonly store?: Store;
  readonly batchSize?: number;
}

/** A component context as the engine builds it, for tests that run a component alone. */
export function componentContext(options: TestContextOptions = {}): ComponentContext {
  const ctx: ComponentContext = {
    name: options.name ?? 'test.component',
    flow: options.flow ?? 'test',
    logger: silentLogger,
    clock: options.clock ?? systemClock,
    baseDir: process.cwd(),
    batchSize: options.batchSize ?? 500,
    resources: noResources,
    store: options.store ?? new SqliteStore(':memory:', options.clock ? { clock: options.clock } : {}),
    owner: 'test-worker',
  };
  return ctx;
}

export interface TestSourceContext extends SourceContext {
  /** Stops intake (as shutdown does): accepting() turns false and the signal aborts. */
  stop(): void;
  /** Toggles accepting() without aborting (the drain phase of a shutdown). */
  setAccepting(v: boolean): void;
}

/**
 * A source context whose `persist` commits to the flow's inbox in `store` through the engine's
 * group commit and whose `http` is the given registrar. `emit` is not supported: push sources persist.
 */
export function sourceContext(store: Store, http: HttpRegistrar, options: TestContextOptions = {}): TestSourceContext {
  const base = componentContext({ ...options, store });
  const controller = new AbortController();
  let accepting = true;
  const flow = base.flow;
  const persister = new Persister(store);
  return {
    ...base,
    signal: controller.signal,
    http,
    accepting: () => accepting && !controller.signal.aborted,
    emit: () => Promise.reject(new Error('emit is not supported by the test source context')),
    checkpoint: {
      get: () => store.getCheckpoint(`${flow}/${base.name}`),
      set: (v) => store.setCheckpoint(`${flow}/${base.name}`, v),
    },
    persist: (batch: Message[], persistOptions?: PersistOptions) => persister.persist(inboxQueue(flow), batch, persistOptions),
    stop: () => {
      accepting = false;
      controller.abort();
    },
    setAccepting: (v) => {
      accepting = v;
    },
  };
}

export function sinkContext(options: TestContextOptions = {}): SinkContext {
  return { ...componentContext(options), signal: new AbortController().signal };
}
