import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { systemClock, type Clock } from '../core/clock.js';
import { RESUME_AFTER_STEP, type ComponentContext, type HttpRegistrar, type Sink, type Source, type SourceContext, type Step, type StepContext } from '../core/component.js';
import { errorMessage, IxError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { createMessage, expandStored, toStored, type Message } from '../core/message.js';
import type { ComponentSlot, Registry } from '../registry/registry.js';
import type { LoadedSpec } from '../spec/load.js';
import { SpecError, type SpecProblem } from '../spec/problem.js';
import type { ComponentSpec, FlowSpec } from '../spec/types.js';
import { inboxQueue, type QueueItem, type Store } from '../store/types.js';
import { backoffFrom } from './backoff.js';
import { FlowRunner, type BuiltSink, type BuiltStep, type FlowStats } from './flow.js';
import { EngineMetrics } from './metrics.js';
import { CompleteGroup } from './complete-group.js';
import { keepLease } from '../core/lease.js';
import { Persister } from './persister.js';
import { ResourceTable } from './resources.js';
import { compileExpression, type Expression } from '../transform/index.js';

export interface EngineOptions {
  readonly loaded: LoadedSpec;
  readonly registry: Registry;
  readonly store: Store;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly metrics?: EngineMetrics;
  /** The public HTTP listener; a push source registers its routes here. */
  readonly http?: HttpRegistrar;
  /** This worker's id (claims and leases); unique per process by default. */
  readonly owner?: string;
  /** Lease on claimed inbox messages. @defaultValue 60 s */
  readonly leaseMs?: number;
  /** How often an idle inbox pump looks for work from other processes. @defaultValue 1 s */
  readonly pollMs?: number;
  /**
   * Lease a leader-only source holds on a shared store (renewed every third of it): how soon
   * another worker takes the source over when its leader dies. @defaultValue 15 s
   */
  readonly sourceLeaseMs?: number;
}

interface FlowState {
  readonly spec: FlowSpec;
  readonly runner: FlowRunner;
  readonly source: Source;
  readonly sourceCtx: ComponentContext;
  /** Runs on one leader worker at a time when the store is shared. */
  readonly sourceLeader: boolean;
  readonly steps: BuiltStep[];
  readonly sinks: BuiltSink[];
  sourceDone: boolean;
  failed: Error | undefined;
  finished: Promise<void>;
  wake: () => void;
}

const noHttp: HttpRegistrar = {
  route: (r) => {
    throw new IxError('IX_SPEC_REFERENCE', { detail: `no public HTTP listener is configured for route ${r.method} ${r.path}` });
  },
};

/**
 * Builds every flow of a spec through the registry and runs them: sources feed flow runners
 * under backpressure; push sources and replays go through each flow's durable inbox.
 */
export class Engine {
  readonly metrics: EngineMetrics;
  readonly owner: string;
  readonly resources: ResourceTable;
  private readonly o: EngineOptions;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly flows: FlowState[] = [];
  private readonly intake = new AbortController();
  private readonly hardStop = new AbortController();
  private readonly persister: Persister;
  private started = false;
  private stopping = false;
  private purgeTimer: NodeJS.Timeout | undefined;
  /** Public routes declared by sources, by `METHOD /path`: the flow that owns each. */
  private readonly routeOwners = new Map<string, string>();

  private constructor(options: EngineOptions, resources: ResourceTable) {
    this.o = options;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.metrics = options.metrics ?? new EngineMetrics();
    this.owner = options.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.resources = resources;
    this.persister = new Persister(options.store);
  }

  /** Builds resources and components; a bad reference throws a SpecError at its file:line:col. */
  static async build(options: EngineOptions): Promise<Engine> {
    const { loaded, registry } = options;
    const clock = options.clock ?? systemClock;
    const logger = options.logger ?? silentLogger;
    const resources = new ResourceTable();
    for (const [key, def] of registry.sections) {
      const entries = loaded.spec.sections[key] ?? {};
      for (const [name, config] of Object.entries(entries)) {
        try {
          resources.set(key, name, await def.build(name, config as never, { logger: logger.child({ [key]: name }), clock, baseDir: loaded.baseDir, resources, rates: options.store }));
        } catch (err) {
          throw loaded.errorAt([key, name], err);
        }
      }
    }
    await checkComponents(loaded, registry, resources, logger);
    const engine = new Engine(options, resources);
    for (const flow of loaded.spec.flows) await engine.buildFlow(flow);
    return engine;
  }

  private async buildFlow(flow: FlowSpec): Promise<void> {
    const { loaded, registry } = this.o;
    const base = (name: string): ComponentContext => ({
      name,
      flow: flow.name,
      logger: this.logger.child({ flow: flow.name, component: name }),
      clock: this.clock,
      baseDir: loaded.baseDir,
      batchSize: flow.batchSize,
      resources: this.resources,
      store: this.o.store,
      owner: this.owner,
    });
    const create = async <T>(slot: 'source' | 'step' | 'sink', c: ComponentSpec, ctx: ComponentContext): Promise<T> => {
      const def = registry.slot(slot).get(c.kind);
      if (!def) throw loaded.errorAt(c.path, new IxError('IX_SPEC_UNKNOWN_COMPONENT', { slot, kind: c.kind, hint: '' }));
      try {
        return (await def.create(c.config as never, ctx)) as T;
      } catch (err) {
        throw loaded.errorAt(c.path, err);
      }
    };
    const signal = this.hardStop.signal;
    const sourceCtx = base(`${flow.name}.source`);
    const source = await create<Source>('source', flow.source, sourceCtx);
    const sourceDef = registry.sources.get(flow.source.kind);
    const cluster = typeof sourceDef?.cluster === 'function' ? sourceDef.cluster(flow.source.config as never) : (sourceDef?.cluster ?? 'leader');
    for (const r of source.routes ?? []) {
      const key = `${r.method} ${r.path}`;
      const other = this.routeOwners.get(key);
      if (other !== undefined) {
        throw loaded.errorAt(flow.source.path, new IxError('IX_SPEC_INVALID', { path: `route ${key}`, detail: `is already used by flow "${other}": give each flow its own path` }));
      }
      this.routeOwners.set(key, flow.name);
    }
    const steps: BuiltStep[] = [];
    for (const [i, s] of flow.steps.entries()) {
      const ctx: StepContext = {
        ...base(`${flow.name}.steps[${i}]`),
        signal,
        forward: (messages) =>
          this.persister.persist(
            inboxQueue(flow.name),
            messages.map((m) => ({ ...m, meta: { ...m.meta, [RESUME_AFTER_STEP]: i } })),
          ),
      };
      steps.push({ name: ctx.name, kind: s.kind, ctx, step: await create<Step>('step', s, ctx) });
    }
    const sinks: BuiltSink[] = [];
    for (const [i, s] of flow.sinks.entries()) {
      const name = sinkName(flow, i);
      const ctx = { ...base(name), signal };
      sinks.push({ name, kind: s.kind, ctx, sink: await create<Sink>('sink', s, ctx) });
    }
    let backoff;
    try {
      backoff = backoffFrom(flow.errors.retry);
    } catch (err) {
      throw loaded.errorAt([...flow.path, 'errors'], err);
    }
    let orderKey: ((msg: Message) => string | undefined) | undefined;
    if (flow.orderBy !== undefined) {
      let expr: Expression;
      try {
        expr = compileExpression(flow.orderBy, { now: () => this.clock.now() });
      } catch (err) {
        throw loaded.errorAt([...flow.path, 'orderBy'], err);
      }
      orderKey = (msg) => {
        const v = expr(msg);
        return v === null || v === undefined ? undefined : typeof v === 'string' ? v : JSON.stringify(v);
      };
    } else if (flow.order === 'key') orderKey = (msg) => msg.key;
    const state: FlowState = {
      spec: flow,
      source,
      sourceCtx,
      // A store that keeps a worker list is shared by several processes; a store without one
      // belongs to one process (SQLite), where there is nobody to lead against.
      sourceLeader: cluster === 'leader' && this.o.store.listWorkers !== undefined,
      steps,
      sinks,
      sourceDone: false,
      failed: undefined,
      finished: Promise.resolve(),
      wake: () => undefined,
      runner: new FlowRunner({
        name: flow.name,
        steps,
        sinks,
        concurrency: flow.concurrency,
        orderKey,
        backoff,
        deadLetter: flow.errors.deadLetter,
        store: this.o.store,
        clock: this.clock,
        logger: this.logger.child({ flow: flow.name }),
        metrics: this.metrics,
        hardStop: signal,
        onFatal: (err) => {
          state.failed = err;
          this.logger.error({ flow: flow.name, err: err.message }, 'flow stopped');
        },
      }),
    };
    this.flows.push(state);
  }

  /** Flow names, in spec order. */
  get flowNames(): string[] {
    return this.flows.map((f) => f.spec.name);
  }

  stats(): Record<string, FlowStats> {
    const out: Record<string, FlowStats> = {};
    for (const f of this.flows) out[f.spec.name] = { ...f.runner.stats };
    return out;
  }

  /** True once started and until shutdown begins. */
  get ready(): boolean {
    return this.started && !this.stopping;
  }

  /** Flows that stopped on an error. */
  failures(): { flow: string; error: string }[] {
    return this.flows.filter((f) => f.failed).map((f) => ({ flow: f.spec.name, error: (f.failed as Error).message }));
  }

  /** Starts every flow. Resolves once sources were started (not when they finish). */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const f of this.flows) f.finished = this.runFlow(f);
    this.purgeTimer = setInterval(() => {
      this.o.store.purgeExpired().catch((err: unknown) => this.logger.warn({ err: errorMessage(err) }, 'purging expired keys failed'));
    }, 600_000);
    this.purgeTimer.unref();
  }

  /** Resolves when every flow has finished (its source ended and its work settled). */
  async done(): Promise<void> {
    await Promise.all(this.flows.map((f) => f.finished));
  }

  /**
   * Graceful shutdown: stop intake, drain in-flight work up to `drainMs`, then abandon what is
   * left (it stays durable at its source or in the inbox) and close the components.
   */
  async stop(drainMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.intake.abort(new IxError('IX_ENGINE_SHUTDOWN'));
    for (const f of this.flows) f.wake();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), drainMs);
    });
    const drained = await Promise.race([this.done().then(() => 'drained' as const), deadline]);
    clearTimeout(timer);
    if (drained === 'timeout') {
      this.logger.warn({ drainMs }, 'drain deadline passed; in-flight work stays durable at its source');
      this.hardStop.abort(new IxError('IX_ENGINE_SHUTDOWN'));
      await Promise.race([this.done(), new Promise((r) => setTimeout(r, 2000).unref())]);
    }
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    for (const f of this.flows) {
      await closeQuietly(f.source, this.logger);
      for (const s of f.steps) await closeQuietly(s.step, this.logger);
      for (const s of f.sinks) await closeQuietly(s.sink, this.logger);
    }
    for (const [section, name, value] of this.resources.entries()) {
      const def = this.o.registry.sections.get(section);
      if (def?.close) await def.close(value).catch((err: unknown) => this.logger.warn({ err: errorMessage(err), section, name }, 'close failed'));
    }
  }

  private async runFlow(f: FlowState): Promise<void> {
    const name = f.spec.name;
    const store = this.o.store;
    const checkpointKey = `${name}/source`;
    const ctx: SourceContext = {
      ...f.sourceCtx,
      signal: this.intake.signal,
      emit: (batch) => f.runner.emit(batch),
      room: () => f.runner.room(),
      checkpoint: {
        get: () => store.getCheckpoint(checkpointKey),
        set: (v) => store.setCheckpoint(checkpointKey, v),
      },
      persist: (batch, options) => {
        if (this.stopping) return Promise.reject(new IxError('IX_ENGINE_SHUTDOWN'));
        return this.persister.persist(inboxQueue(name), batch, options, true);
      },
      http: this.o.http ?? noHttp,
      accepting: () => !this.stopping,
    };
    const source = (f.sourceLeader ? this.runAsLeader(f, ctx) : f.source.run(ctx))
      .catch((err: unknown) => {
        if (this.stopping && err instanceof IxError && err.code === 'IX_ENGINE_SHUTDOWN') return;
        f.failed = err instanceof Error ? err : new Error(String(err));
        this.logger.error({ flow: name, err: errorMessage(err) }, 'source failed');
      })
      .finally(() => {
        f.sourceDone = true;
        f.wake();
      });
    const pump = this.pumpInbox(f);
    await Promise.all([source, pump]);
    await f.runner.idle();
  }

  /**
   * Runs a leader-only source while this worker holds the lease `source:<flow>`: followers
   * wait and try again every third of the lease; the leader renews it as often and stops the
   * source the moment it can no longer be sure it holds it (lost to another worker, or not
   * renewed for two thirds of it), so two workers never read the same checkpoint at once.
   * The next leader resumes from the checkpoint, which covers only what settled.
   */
  private async runAsLeader(f: FlowState, ctx: SourceContext): Promise<void> {
    const name = f.spec.name;
    const store = this.o.store;
    const lease = `source:${name}`;
    const ttl = this.o.sourceLeaseMs ?? 15_000;
    const every = Math.max(100, Math.floor(ttl / 3));
    const log = this.logger.child({ flow: name });
    let waiting = false;
    while (!this.stopping) {
      let mine = false;
      try {
        mine = await store.acquireLease(lease, this.owner, ttl);
      } catch (err) {
        log.warn({ err: errorMessage(err) }, 'source lease unavailable; retrying');
      }
      if (!mine) {
        if (!waiting) log.info({ lease }, 'another worker leads this source; standing by');
        waiting = true;
        await this.clock.sleep(every, this.intake.signal).catch(() => undefined);
        continue;
      }
      waiting = false;
      log.info({ lease }, 'leading this source');
      const kept = keepLease({
        store,
        name: lease,
        owner: this.owner,
        ttlMs: ttl,
        clock: this.clock,
        lostError: () => new IxError('IX_ENGINE_SHUTDOWN'),
        onRenewFailed: (err) => log.warn({ err: errorMessage(err) }, 'source lease renewal failed'),
      });
      const lost = kept.lost;
      try {
        await f.source.run({ ...ctx, signal: AbortSignal.any([this.intake.signal, lost]) });
      } catch (err) {
        if (!lost.aborted) throw err;
      } finally {
        await kept.stop();
      }
      if (lost.aborted && !this.stopping) {
        log.warn({ lease }, 'lost the source lease; standing by');
        continue;
      }
      await store.releaseLease(lease, this.owner).catch(() => undefined);
      return;
    }
  }

  /** Drains the flow's durable inbox (push sources, replayed dead letters) into the runner. */
  private async pumpInbox(f: FlowState): Promise<void> {
    const name = f.spec.name;
    const store = this.o.store;
    const queue = inboxQueue(name);
    const leaseMs = this.o.leaseMs ?? 60_000;
    const pollMs = this.o.pollMs ?? 1000;
    /** The ids claimed or handed over and not acknowledged yet (their leases are renewed). */
    const held = new Set<string>();
    const inFlight = new Set<Promise<unknown>>();
    let woken = false;
    let wakeResolve: (() => void) | undefined;
    f.wake = () => {
      woken = true;
      wakeResolve?.();
    };
    // Whether the inbox may hold ready messages this pump has not claimed: at start, after an
    // enqueue that was not handed over, after another process's enqueue (waitForWork) or a
    // poll. A hand-over alone leaves it clear, so a pump fed by hand-overs claims only every
    // claimEveryMs (due retries, replays), not after every batch (an empty claim is a write
    // transaction).
    let inboxDirty = true;
    this.persister.onEnqueued(queue, () => {
      inboxDirty = true;
      f.wake();
    });
    // What this process's push sources persist comes straight here, leased to this worker
    // (no claim, no decoding), up to two claims' worth; more waits in the inbox for a claim.
    const handed: Message[] = [];
    let pumping = true;
    const handedMax = Math.max(2 * f.spec.batchSize, 256);
    this.persister.handoffTo(queue, {
      owner: this.owner,
      leaseMs,
      room: () => (pumping && !this.stopping && !f.failed ? handedMax - handed.length : 0),
      take: (messages) => {
        if (!pumping) {
          // the pump already stopped: give them back to the inbox at once
          store.release(queue, this.owner, messages.map((m) => m.id)).catch(() => undefined);
          return;
        }
        for (const m of messages) {
          handed.push(m);
          held.add(m.id);
        }
        f.wake();
      },
    });
    // Handed over but not started: back to the inbox at stop (before any drain wait, as a
    // stuck sink may hold the pump) rather than when the lease expires.
    const giveBack = async (): Promise<void> => {
      pumping = false;
      this.persister.handoffTo(queue, undefined);
      const left = handed.splice(0).map((m) => m.id);
      for (const id of left) held.delete(id);
      if (left.length > 0) await store.release(queue, this.owner, left).catch((err: unknown) => this.logger.warn({ flow: name, err: errorMessage(err) }, 'inbox release failed; the lease will expire'));
    };
    const onStop = (): void => void giveBack();
    this.intake.signal.addEventListener('abort', onStop, { once: true });
    // While messages are handed over, the inbox is still claimed now and then: retries that
    // came due, replayed dead letters and what other workers or full hand-overs left there.
    let claimedAt = 0;
    const claimEveryMs = 500;
    // acknowledgements of settled batches, committed in groups
    const completes = new CompleteGroup((ids) => store.complete(queue, this.owner, ids));
    const renew = setInterval(() => {
      if (held.size === 0) return;
      store.extendLease(queue, this.owner, [...held], leaseMs).catch((err: unknown) => this.logger.warn({ flow: name, err: errorMessage(err) }, 'lease renewal failed'));
    }, Math.max(1000, Math.floor(leaseMs / 3)));
    renew.unref();
    // the poll of a sleeping pump: the inbox may hold what nobody announced (due retries)
    const poll = setTimeout(() => {
      inboxDirty = true;
      wakeResolve?.();
    }, pollMs);
    try {
      while (!this.stopping && !f.failed) {
        // Claim on the next turn: the answers to the commit that woke the pump, and requests
        // already read from the sockets, go first instead of waiting behind the claim's
        // synchronous transaction; what arrives meanwhile joins the same, larger claim.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (this.stopping || f.failed) break;
        let batch: Message[] = [];
        if (inboxDirty || this.clock.now() - claimedAt >= claimEveryMs) {
          claimedAt = this.clock.now();
          inboxDirty = false;
          let items: QueueItem[];
          try {
            items = await store.claim(queue, this.owner, { limit: f.spec.batchSize, leaseMs });
          } catch (err) {
            this.logger.warn({ flow: name, err: errorMessage(err) }, 'inbox claim failed; retrying');
            items = [];
            inboxDirty = true;
          }
          // a full claim may have left more behind
          if (items.length >= f.spec.batchSize) inboxDirty = true;
          batch = items.map((i) => {
            const m = expandStored(i.message);
            return createMessage({ ...m, meta: { ...m.meta, attempts: i.attempts } });
          });
        }
        if (batch.length === 0 && handed.length > 0) {
          batch = handed.splice(0, f.spec.batchSize).map((m) => createMessage({ ...toStored(m), meta: { ...m.meta, attempts: 0 } }));
        }
        if (batch.length === 0) {
          if (f.sourceDone && inFlight.size === 0) {
            const stats = await store.queueStats(queue);
            if (stats.ready + stats.leased === 0) break;
          }
          if (woken) {
            woken = false;
            continue;
          }
          // Sleep until this process enqueues (wake), another process does (the store's
          // waitForWork: LISTEN/NOTIFY on PostgreSQL), or the poll interval passes. One poll
          // timer, re-armed per sleep: a busy pump sleeps between most batches.
          poll.refresh();
          const waitForWork = store.waitForWork?.bind(store);
          const idle = waitForWork ? new AbortController() : undefined;
          await new Promise<void>((resolve) => {
            wakeResolve = resolve;
            waitForWork?.(queue, pollMs, idle?.signal).then(
              (byWork) => {
                if (!byWork) return;
                inboxDirty = true;
                wakeResolve?.();
              },
              () => undefined,
            );
          });
          idle?.abort();
          wakeResolve = undefined;
          woken = false;
          continue;
        }
        const ids = batch.map((m) => m.id);
        for (const id of ids) held.add(id);
        let settled: Promise<unknown>;
        try {
          settled = (await f.runner.emit(batch)).settled;
        } catch (err) {
          settled = Promise.reject(err);
        }
        const p = settled
          .then(
            () => completes.add(ids),
            // released messages are ready again at once: the next turn claims them
            () =>
              store.release(queue, this.owner, ids).then(() => {
                inboxDirty = true;
                f.wake();
              }),
          )
          .catch((err: unknown) => this.logger.warn({ flow: name, err: errorMessage(err) }, 'inbox acknowledgement failed; the lease will expire'))
          .finally(() => {
            for (const id of ids) held.delete(id);
            inFlight.delete(p);
            // The flow may be finished now: let the pump look.
            if (inFlight.size === 0 && f.sourceDone) f.wake();
          });
        inFlight.add(p);
      }
      // (a group still waiting commits within its wait: CompleteGroup's maxWaitMs)
      await Promise.allSettled([...inFlight]);
    } finally {
      this.intake.signal.removeEventListener('abort', onStop);
      clearInterval(renew);
      clearTimeout(poll);
      await giveBack();
    }
  }
}

function sinkName(flow: FlowSpec, i: number): string {
  return flow.sinks.length === 1 ? `${flow.name}.sink` : `${flow.name}.sinks[${i}]`;
}

/**
 * Runs the `check` of every component the spec names (flows, and the event sources of syncs)
 * before any is built: a missing input file refuses the spec before anything starts. Throws one
 * SpecError with every problem at its file:line:col.
 */
async function checkComponents(loaded: LoadedSpec, registry: Registry, resources: ResourceTable, logger: Logger): Promise<void> {
  const targets: { slot: ComponentSlot; c: ComponentSpec; name: string; flow: string }[] = [];
  for (const flow of loaded.spec.flows) {
    targets.push({ slot: 'source', c: flow.source, name: `${flow.name}.source`, flow: flow.name });
    flow.steps.forEach((c, i) => targets.push({ slot: 'step', c, name: `${flow.name}.steps[${i}]`, flow: flow.name }));
    flow.sinks.forEach((c, i) => targets.push({ slot: 'sink', c, name: sinkName(flow, i), flow: flow.name }));
  }
  for (const job of loaded.spec.syncs) {
    for (const s of job.streams) {
      const name = `sync:${job.name}.${s.name}`;
      if (s.events) targets.push({ slot: 'source', c: s.events, name, flow: name });
    }
  }
  const problems: SpecProblem[] = [];
  for (const { slot, c, name, flow } of targets) {
    const def = registry.slot(slot).get(c.kind);
    if (!def?.check) continue;
    const ctx = { name, flow, baseDir: loaded.baseDir, logger: logger.child({ flow, component: name }), resources };
    try {
      for (const p of (await def.check(c.config as never, ctx)) ?? []) problems.push(...loaded.errorAt([...c.path, ...p.field], p.error).problems);
    } catch (err) {
      problems.push(...loaded.errorAt(c.path, err).problems);
    }
  }
  if (problems.length > 0) throw new SpecError(problems);
}

async function closeQuietly(c: { close?: () => Promise<void> }, logger: Logger): Promise<void> {
  try {
    await c.close?.();
  } catch (err) {
    logger.warn({ err: errorMessage(err) }, 'close failed');
  }
}

