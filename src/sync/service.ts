/**
 * Runs a spec's sync jobs: `ix sync run` runs one job now; under `ix run` each job runs on its
 * schedule (one worker at a time, by a lease in the store) and realtime streams apply their
 * events continuously. Every run is recorded in the store for `ix sync status`.
 */
import { randomUUID } from 'node:crypto';
import { Cron } from 'croner';
import type { Clock } from '../core/clock.js';
import type { ComponentStore, HttpRegistrar, Outcome, Resources, Source, SourceContext } from '../core/component.js';
import { errorMessage, IxError } from '../core/errors.js';
import { keepLease, type KeptLease } from '../core/lease.js';
import type { Logger } from '../core/logger.js';
import { parseDuration } from '../core/units.js';
import type { Registry } from '../registry/registry.js';
import { hint } from '../spec/did-you-mean.js';
import type { LoadedSpec } from '../spec/load.js';
import type { SyncSpec } from '../spec/types.js';
import { TargetPool } from './connect.js';
import type { SyncMetrics } from './metrics.js';
import { Progress } from './progress.js';
import { emptyStats, StreamRunner, type StreamEnv, type StreamResult, type StreamStats } from './stream.js';

export interface SyncRunOptions {
  readonly fullRefresh?: boolean;
  readonly from?: unknown;
  readonly to?: unknown;
  /** Only these streams. */
  readonly streams?: readonly string[];
  readonly signal?: AbortSignal;
  readonly onProgress?: StreamEnv['onProgress'];
}

export interface SyncStreamRecord extends StreamStats {
  readonly stream: string;
  readonly status: StreamResult['status'];
  readonly checkpoint: unknown;
  readonly error?: string;
}

/** One run of a job, kept in the store. */
export interface SyncRunRecord {
  readonly id: string;
  readonly job: string;
  readonly trigger: string;
  /**
   * The scheduled tick this run stands for (ms since the epoch; for the run at start, the
   * first tick after it), claimed in the store so that one worker of a cluster runs it.
   */
  readonly tick?: number;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly status: 'ok' | 'failed' | 'stopped';
  readonly totals: StreamStats;
  readonly streams: readonly SyncStreamRecord[];
}

export interface SyncServiceOptions {
  readonly loaded: LoadedSpec;
  readonly registry: Registry;
  readonly store: ComponentStore;
  readonly resources: Resources;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly owner: string;
  readonly metrics?: SyncMetrics;
  readonly http?: HttpRegistrar;
  /**
   * The other workers live on the store now (`ix run` on a store several processes share).
   * With it, a job without a schedule runs at start once across the cluster: a worker that
   * starts while a worker that ran it (or saw it run) is alive does not run it again.
   * Without it, every start runs such a job.
   */
  readonly liveWorkers?: () => Promise<readonly string[]>;
  /**
   * The lease `sync:NAME` a scheduled run holds, renewed every third of it while the run
   * lasts: how soon another worker may run the job after this one died mid-run.
   * @defaultValue 60 s
   */
  readonly syncLeaseMs?: number;
}

const HISTORY = 50;
/** How long a claimed tick is remembered; a tick later than half of it is skipped. */
const TICK_MEMORY_MS = 3_600_000;
/** How long a worker is remembered as one that ran or saw the run at start of a job. */
const START_MEMORY_MS = 365 * 24 * 3_600_000;

/**
 * The job's next tick strictly after a time (ms since the epoch), or undefined for a job
 * without a schedule. `every` ticks fall on multiples of the interval since the epoch, so
 * every worker's ticks are the same instants.
 */
export function nextTick(job: Pick<SyncSpec, 'schedule' | 'every'>): ((after: number) => number) | undefined {
  if (job.schedule) {
    const cron = new Cron(job.schedule, { paused: true, timezone: 'UTC' });
    return (after) => cron.nextRun(new Date(after))?.getTime() ?? Number.POSITIVE_INFINITY;
  }
  if (job.every === undefined) return undefined;
  const ms = parseDuration(job.every);
  return (after) => (Math.floor(after / ms) + 1) * ms;
}

/** Checks what the syncs name in other sections (services and their endpoints); throws at file:line:col. */
export function validateSyncReferences(loaded: LoadedSpec, resources: Resources): void {
  for (const job of loaded.spec.syncs) {
    for (const s of job.streams) {
      if (s.from?.kind !== 'http') continue;
      const cfg = s.from.config as { service: string; endpoint: string };
      try {
        const service = resources.get<{ endpoint?: (name: string) => unknown }>('services', cfg.service);
        if (typeof service.endpoint !== 'function') throw new IxError('IX_SPEC_REFERENCE', { detail: `service "${cfg.service}" is not a REST service` });
        service.endpoint(cfg.endpoint);
      } catch (err) {
        throw loaded.errorAt([...s.from.path, 'service'], err);
      }
    }
  }
}

export class SyncService {
  private readonly abort = new AbortController();
  private readonly timers: { stop(): void }[] = [];
  private readonly running = new Set<Promise<unknown>>();
  private readonly busy = new Set<string>();
  /** Per stream: the copy's batches and the events' batches take turns. */
  private readonly lanes = new Map<string, Promise<unknown>>();
  private readonly realtime: { source: Source; runner: StreamRunner }[] = [];
  private stopped: (() => void) | undefined;
  private readonly stoppedP = new Promise<void>((r) => (this.stopped = r));

  constructor(private readonly o: SyncServiceOptions) {
    validateSyncReferences(o.loaded, o.resources);
  }

  get jobs(): readonly SyncSpec[] {
    return this.o.loaded.spec.syncs;
  }

  job(name: string): SyncSpec {
    const job = this.jobs.find((j) => j.name === name);
    if (!job) {
      const names = this.jobs.map((j) => j.name);
      throw new IxError('IX_SYNC_UNKNOWN', { name, hint: hint(name, names) || (names.length ? ` (defined: ${names.join(', ')})` : ' (the spec has no syncs:)') });
    }
    return job;
  }

  private env(job: SyncSpec, onProgress?: StreamEnv['onProgress']): StreamEnv {
    const { store, resources, logger, clock, metrics, loaded } = this.o;
    const serial = <T>(stream: string, fn: () => Promise<T>): Promise<T> => {
      const k = `${job.name}\0${stream}`;
      const p = (this.lanes.get(k) ?? Promise.resolve()).then(fn, fn);
      this.lanes.set(k, p.catch(() => undefined));
      return p;
    };
    return { job, store, resources, baseDir: loaded.baseDir, clock, logger, serial, ...(metrics ? { metrics } : {}), ...(onProgress ? { onProgress } : {}) };
  }

  /** Runs a job's pull streams now, at most `concurrency` at once, and records the run. */
  async run(name: string, options: SyncRunOptions = {}, trigger = 'manual', tick?: number): Promise<SyncRunRecord> {
    const job = this.job(name);
    const signal = options.signal ? AbortSignal.any([options.signal, this.abort.signal]) : this.abort.signal;
    const targets = new TargetPool(this.o.loaded.baseDir, this.o.logger);
    // Progress log events always; the caller may draw bars too (`ix sync run` on a terminal).
    const progress = options.onProgress ? undefined : new Progress({ job: name, logger: this.o.logger });
    const env = { ...this.env(job, options.onProgress ?? progress?.update), targets };
    const streams = job.streams.filter((s) => s.mode !== 'realtime' && (!options.streams || options.streams.includes(s.name)));
    if (options.streams) {
      for (const n of options.streams) if (!job.streams.some((s) => s.name === n)) throw new IxError('IX_SYNC_UNKNOWN', { name: `${name}.${n}`, hint: ` (streams: ${job.streams.map((s) => s.name).join(', ')})` });
    }
    const startedAt = this.o.clock.now();
    const results: StreamResult[] = [];
    const queue = [...streams];
    const worker = async (): Promise<void> => {
      for (let s = queue.shift(); s; s = queue.shift()) {
        const runner = new StreamRunner(s, env);
        try {
          results.push(
            await runner.run({
              signal,
              ...(options.fullRefresh ? { fullRefresh: true } : {}),
              ...(options.from !== undefined ? { from: options.from } : {}),
              ...(options.to !== undefined ? { to: options.to } : {}),
            }),
          );
        } finally {
          await runner.close();
        }
      }
    };
    this.o.logger.info({ sync: name, streams: streams.map((s) => s.name), trigger }, 'sync run started');
    try {
      await Promise.all(Array.from({ length: Math.min(job.concurrency, Math.max(1, streams.length)) }, worker));
    } finally {
      progress?.stop();
      await targets.close();
    }
    const totals = emptyStats();
    for (const r of results) for (const k of Object.keys(totals) as (keyof StreamStats)[]) totals[k] += r.stats[k];
    const status = results.some((r) => r.status === 'failed') ? 'failed' : results.some((r) => r.status === 'stopped') ? 'stopped' : 'ok';
    const record: SyncRunRecord = {
      id: randomUUID(),
      job: name,
      trigger,
      ...(tick !== undefined ? { tick } : {}),
      startedAt,
      endedAt: this.o.clock.now(),
      status,
      totals,
      streams: streams.map((s) => {
        const r = results.find((x) => x.stream === s.name) as StreamResult;
        return { stream: s.name, status: r.status, ...r.stats, checkpoint: r.checkpoint, ...(r.error ? { error: r.error } : {}) };
      }),
    };
    await this.record(record);
    this.o.metrics?.runs.inc({ job: name, status });
    this.o.logger.info({ sync: name, status, ...totals, ms: record.endedAt - startedAt }, 'sync run finished');
    return record;
  }

  /**
   * A run under the job's lease `sync:NAME`, as `ix sync run` makes one: refused with
   * `IX_SYNC_BUSY` while an `ix run` worker's run or another `ix sync run` holds it, so two
   * processes never write a job's target or its checkpoints at once.
   */
  async runExclusive(name: string, options: SyncRunOptions = {}, trigger = 'manual'): Promise<SyncRunRecord> {
    this.job(name);
    const lease = `sync:${name}`;
    const ttl = this.o.syncLeaseMs ?? 60_000;
    if (!(await this.o.store.acquireLease(lease, this.o.owner, ttl))) throw new IxError('IX_SYNC_BUSY', { job: name });
    const held = this.holdLease(name, lease, ttl);
    try {
      return await this.run(name, { ...options, signal: options.signal ? AbortSignal.any([options.signal, held.lost]) : held.lost }, trigger);
    } finally {
      await held.stop();
      await this.o.store.releaseLease(lease, this.o.owner).catch(() => undefined);
    }
  }

  private async record(r: SyncRunRecord): Promise<void> {
    const key = `sync-runs/${r.job}`;
    const list = await this.history(r.job);
    list.push(r);
    await this.o.store.setCheckpoint(key, JSON.stringify(list.slice(-HISTORY)));
  }

  /** Recorded runs of a job, oldest first. */
  async history(name: string): Promise<SyncRunRecord[]> {
    const raw = await this.o.store.getCheckpoint(`sync-runs/${name}`);
    return raw ? (JSON.parse(raw) as SyncRunRecord[]) : [];
  }

  /** Under `ix run`: schedules, one-off runs of unscheduled jobs, and realtime streams. */
  async start(): Promise<void> {
    for (const job of this.jobs) {
      for (const s of job.streams) if (s.events) await this.startEvents(job, s.name);
      const pull = job.streams.some((s) => s.mode !== 'realtime');
      if (!pull) continue;
      const next = nextTick(job);
      if (!next) {
        void this.track(this.scheduled(job.name, 'start'));
        continue;
      }
      // Every worker names a tick the same (its planned time), so the tick is claimed once in
      // the store and runs on one worker of the cluster. The run at start stands for the
      // period until the first tick: workers starting in the same period run it once.
      void this.track(this.scheduled(job.name, 'start', `start:${next(this.o.clock.now())}`));
      const trigger = job.schedule ? 'schedule' : 'every';
      void this.tickLoop(job.name, trigger, next);
      this.timers.push({ stop: () => undefined }); // the loop ends on abort
    }
  }

  /** Sleeps until each next tick and runs it; ends when the service stops. */
  private async tickLoop(name: string, trigger: string, next: (after: number) => number): Promise<void> {
    const clock = this.o.clock;
    for (let at = next(clock.now()); Number.isFinite(at); at = next(Math.max(clock.now(), at))) {
      try {
        await clock.sleep(Math.max(0, at - clock.now()), this.abort.signal);
      } catch {
        return;
      }
      // A tick this late (a suspended machine) may be forgotten by the store: skip it.
      if (clock.now() - at > TICK_MEMORY_MS / 2) continue;
      void this.track(this.scheduled(name, trigger, String(at)));
    }
  }

  /** Resolves when every one-off run finished and, if anything is scheduled or realtime, when stopped. */
  async done(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
    if (this.timers.length > 0 || this.realtime.length > 0) await this.stoppedP;
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.running.add(p);
    void p.finally(() => this.running.delete(p)).catch(() => undefined);
    return p;
  }

  /**
   * A scheduled run: never overlapping the previous one of its job (here by `busy`, across
   * workers by the lease `sync:NAME`, renewed while the run lasts: `holdLease`), and once per
   * tick across workers: the tick is claimed in the store, so a worker whose timer fires after
   * another one's run ended skips it. The run at start of a job without a schedule runs once
   * per cluster (`startRun`).
   */
  private async scheduled(name: string, trigger: string, tick?: string): Promise<void> {
    if (this.busy.has(name)) return;
    this.busy.add(name);
    const lease = `sync:${name}`;
    const ttl = this.o.syncLeaseMs ?? 60_000;
    try {
      const once = tick === undefined && trigger === 'start' && this.o.liveWorkers !== undefined;
      if (!(await this.o.store.acquireLease(lease, this.o.owner, ttl))) {
        // Another worker runs the job (most likely its run at start): this one saw it.
        if (once) {
          await this.startRun(name, false);
          this.o.logger.info({ sync: name }, 'sync job is running on another worker; not running it at start here');
        }
        return;
      }
      const held = this.holdLease(name, lease, ttl);
      try {
        if (tick !== undefined) {
          const [fresh] = await this.o.store.remember(`sync-ticks:${name}`, [tick], TICK_MEMORY_MS);
          if (!fresh) return;
        }
        if (once && !(await this.startRun(name, true))) {
          this.o.logger.info({ sync: name }, 'sync job already ran at start on a live worker of this store; not running it again');
          return;
        }
        const at = tick === undefined ? undefined : Number(tick.replace(/^start:/, ''));
        await this.run(name, { signal: held.lost }, trigger, at);
      } finally {
        await held.stop();
        await this.o.store.releaseLease(lease, this.o.owner).catch(() => undefined);
      }
    } catch (err) {
      this.o.logger.error({ sync: name, err: errorMessage(err) }, 'sync run failed');
    } finally {
      this.busy.delete(name);
    }
  }

  /**
   * Renews the lease `sync:NAME` while a run holds it (`keepLease`). `lost` aborts once this
   * worker can no longer be sure it holds it: the run stops taking new work, so two workers
   * never write the job's target at once.
   */
  private holdLease(name: string, lease: string, ttl: number): KeptLease {
    const { store, owner, clock, logger } = this.o;
    return keepLease({
      store,
      name: lease,
      owner,
      ttlMs: ttl,
      clock,
      lostError: (why) => {
        const what = why === 'taken' ? 'another worker holds the sync lease' : 'the sync lease was not renewed for two thirds of it';
        logger.warn({ sync: name, lease }, `${what}; the sync run stops taking new work`);
        return new IxError('IX_SYNC_LEASE_LOST', { job: name });
      },
      onRenewFailed: (err) => logger.warn({ sync: name, err: errorMessage(err) }, 'sync lease renewal failed'),
    });
  }

  /**
   * The run at start of a job without a schedule, on a store several workers share: once per
   * cluster, not once per worker. The store keeps the current run at start (`sync-start/NAME`)
   * and remembers every worker that ran it or started while it stood; it stands while one of
   * them is alive. With `claim` (the job's lease held), a run that no longer stands (the first
   * start, or every worker that knew it is gone) is replaced by a new one for this worker:
   * true when this worker is to run it. Without `claim`, only joins a run that stands.
   */
  private async startRun(name: string, claim: boolean): Promise<boolean> {
    const { store, owner, clock } = this.o;
    const key = `sync-start/${name}`;
    const scope = `sync-start:${name}`;
    const current = await store.getCheckpoint(key);
    if (current !== undefined) {
      const live = await (this.o.liveWorkers as NonNullable<SyncServiceOptions['liveWorkers']>)();
      const knew = live.length > 0 ? await store.seen(scope, live.map((id) => `${current}/${id}`)) : [];
      if (knew.includes(true)) {
        await store.remember(scope, [`${current}/${owner}`], START_MEMORY_MS);
        return false;
      }
    }
    if (!claim) return false;
    const run = `${clock.now()}:${owner}`;
    await store.setCheckpoint(key, run);
    await store.remember(scope, [`${run}/${owner}`], START_MEMORY_MS);
    return true;
  }

  private async startEvents(job: SyncSpec, streamName: string): Promise<void> {
    const spec = job.streams.find((s) => s.name === streamName) as SyncSpec['streams'][number];
    const events = spec.events as NonNullable<typeof spec.events>;
    const def = this.o.registry.sources.get(events.kind);
    if (!def) throw this.o.loaded.errorAt(events.path, new IxError('IX_SPEC_UNKNOWN_COMPONENT', { slot: 'source', kind: events.kind, hint: '' }));
    const runner = new StreamRunner(spec, this.env(job));
    const name = `sync:${job.name}.${spec.name}`;
    const logger = this.o.logger.child({ sync: job.name, stream: spec.name, component: 'events' });
    const base = { name, flow: name, logger, clock: this.o.clock, baseDir: this.o.loaded.baseDir, batchSize: spec.batchSize, resources: this.o.resources, store: this.o.store, owner: this.o.owner };
    let source: Source;
    try {
      await runner.open();
      source = await def.create(events.config as never, base);
      // The backfill starts after this: changes from here on reach the events source.
      await source.prepare?.();
    } catch (err) {
      throw this.o.loaded.errorAt(events.path, err);
    }
    const key = `sync/${job.name}/${spec.name}/events`;
    const settle = async (payloads: unknown[]): Promise<{ outcomes: Outcome[]; delivered: number; deadLettered: number; filtered: number }> => {
      const st = await runner.applyEvents(payloads);
      return { outcomes: payloads.map(() => 1 as Outcome), delivered: payloads.length - st.failed, deadLettered: st.failed, filtered: 0 };
    };
    const ctx: SourceContext = {
      ...base,
      signal: this.abort.signal,
      emit: (batch) => {
        const settled = settle(batch.map((m) => m.payload));
        settled.catch(() => undefined);
        return Promise.resolve({ settled });
      },
      persist: async (batch) => {
        await settle(batch.map((m) => m.payload));
        return { accepted: batch.length, duplicates: 0 };
      },
      checkpoint: { get: () => this.o.store.getCheckpoint(key), set: (v) => this.o.store.setCheckpoint(key, v) },
      http: this.o.http ?? { route: () => { throw new IxError('IX_SPEC_REFERENCE', { detail: 'no public HTTP listener for a sync event source' }); } },
      accepting: () => !this.abort.signal.aborted,
    };
    this.realtime.push({ source, runner });
    void this.track(
      source.run(ctx).catch((err: unknown) => {
        if (!this.abort.signal.aborted) logger.error({ err: errorMessage(err) }, 'sync event source stopped');
      }),
    );
  }

  async stop(): Promise<void> {
    this.abort.abort(new IxError('IX_ENGINE_SHUTDOWN'));
    for (const t of this.timers) t.stop();
    await Promise.race([Promise.allSettled([...this.running]), new Promise((r) => setTimeout(r, 10_000).unref())]);
    for (const r of this.realtime) {
      await r.source.close?.().catch(() => undefined);
      await r.runner.close();
    }
    this.stopped?.();
  }
}
