import { hostname } from 'node:os';
import type { Clock } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { parseDuration } from '../core/units.js';
import { createAdminServer } from '../admin/admin-server.js';
import { Engine } from '../engine/engine.js';
import { createLogger } from '../observability/logger.js';
import type { Registry } from '../registry/registry.js';
import { loadSpecFile, type LoadedSpec } from '../spec/load.js';
import type { Store } from '../store/types.js';
import { parseListen } from './listen.js';
import { PublicServer } from './public-server.js';
import { createRegistry } from './registry.js';
import { bindServiceMetrics } from '../connectors/http/metrics.js';
import { DEFAULT_STORE, openStore, redactUrl } from './store.js';
import { systemClock } from '../core/clock.js';
import { SyncMetrics } from '../sync/metrics.js';
import { SyncService } from '../sync/service.js';

export interface AppOptions {
  readonly specFile: string;
  /** Overrides the spec's `store`. */
  readonly store?: string;
  /** Overrides `admin.listen`; false turns the admin listener off. */
  readonly admin?: string | false;
  /** Overrides `http.listen`. */
  readonly http?: string;
  readonly registry?: Registry;
  readonly logger?: Logger;
  readonly logLevel?: string;
  readonly clock?: Clock;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * Lease on claimed inbox messages: how soon a dead worker's claims return to the queue (60 s
   * by default). It is also the lease a sync job's run holds (renewed while it lasts: how soon
   * another worker runs the job after this one died mid-run), and on a shared store the lease of
   * leader-only sources, when shorter than their 15 s default.
   */
  readonly leaseMs?: number;
  /** How often this worker records itself in the store's workers table (`ix status`). @defaultValue 5 s */
  readonly heartbeatMs?: number;
}

export interface App {
  readonly loaded: LoadedSpec;
  readonly engine: Engine;
  readonly store: Store;
  readonly logger: Logger;
  readonly adminAddress: string | undefined;
  readonly httpAddress: string | undefined;
  /** Resolves when every flow has finished (finite sources). */
  done(): Promise<void>;
  /** Graceful shutdown within the spec's drain timeout. */
  stop(): Promise<void>;
}

/** Loads a spec, opens its store, builds and starts its flows and listeners. */
export async function startApp(options: AppOptions): Promise<App> {
  const registry = options.registry ?? createRegistry();
  const loaded = loadSpecFile(options.specFile, registry, options.env ? { env: options.env } : {});
  const logger =
    options.logger ?? createLogger({ secrets: loaded.secretValues, ...(options.logLevel ? { level: options.logLevel } : {}) });
  const storeUrl = options.store ?? loaded.spec.store ?? DEFAULT_STORE;
  const store = await openStore(storeUrl, loaded.baseDir, options.clock);
  try {
    await releaseHoldingsOfGoneProcesses(store, logger);
  } catch (err) {
    logger.warn({ err: errorMessage(err) }, 'could not look for holdings of stopped processes; their leases will expire');
  }
  const publicServer = new PublicServer(logger.child({ component: 'http' }));
  let engine: Engine;
  try {
    engine = await Engine.build({
      loaded,
      registry,
      store,
      logger,
      http: publicServer,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.leaseMs ? { leaseMs: options.leaseMs, sourceLeaseMs: Math.min(options.leaseMs, 15_000) } : {}),
    });
  } catch (err) {
    await store.close();
    throw err;
  }
  bindServiceMetrics(engine.metrics.registry); // service calls, retries, circuit state per endpoint in /metrics
  let syncs: SyncService | undefined;
  try {
    if (loaded.spec.syncs.length > 0) {
      syncs = new SyncService({
        loaded,
        registry,
        store,
        resources: engine.resources,
        logger,
        clock: options.clock ?? systemClock,
        owner: engine.owner,
        metrics: new SyncMetrics(engine.metrics.registry),
        http: publicServer,
        ...(store.listWorkers ? { liveWorkers: liveWorkersOf(store, engine.owner) } : {}),
        ...(options.leaseMs ? { syncLeaseMs: options.leaseMs } : {}),
      });
    }
  } catch (err) {
    await engine.stop(0).catch(() => undefined);
    await store.close();
    throw err;
  }
  let stopping = false;
  const adminListen = options.admin === false || !loaded.spec.admin.enabled ? undefined : (options.admin ?? loaded.spec.admin.listen);
  const admin = adminListen
    ? createAdminServer(
        { live: () => true, ready: () => engine.ready && !stopping, flows: () => engine.stats() },
        engine.metrics.registry,
      )
    : undefined;
  let adminAddress: string | undefined;
  let httpAddress: string | undefined;
  const workerInfo: Record<string, unknown> = { spec: loaded.spec.name, admin: undefined, http: undefined };
  let heartbeat: Heartbeat | undefined;
  try {
    if (admin && adminListen) {
      const { host, port } = parseListen(adminListen);
      await admin.listen({ host, port });
      const a = admin.server.address();
      adminAddress = typeof a === 'object' && a ? `${a.address}:${a.port}` : adminListen;
    }
    // Listed among the live workers before the syncs start, so a worker starting next sees
    // this one (a job's run at start runs once on a shared store).
    workerInfo['admin'] = adminAddress;
    heartbeat = startHeartbeat(store, engine, logger, options.heartbeatMs ?? 5000, workerInfo);
    await heartbeat.beat();
    engine.start();
    await syncs?.start();
    if (publicServer.hasRoutes) {
      const { host, port } = parseListen(options.http ?? loaded.spec.http.listen);
      httpAddress = await publicServer.listen(host, port);
      workerInfo['http'] = httpAddress;
      void heartbeat.beat();
    }
  } catch (err) {
    await heartbeat?.stop().catch(() => undefined);
    await syncs?.stop().catch(() => undefined);
    await engine.stop(0).catch(() => undefined);
    await admin?.close().catch(() => undefined);
    await publicServer.close().catch(() => undefined);
    await store.close();
    throw err;
  }
  logger.info(
    { spec: loaded.file, store: redactUrl(storeUrl), flows: engine.flowNames, admin: adminAddress, http: httpAddress, worker: engine.owner },
    'interchange started',
  );

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      stopping = true;
      const drainMs = parseDuration(loaded.spec.shutdown.drainTimeout);
      // Refuse new requests first (503 while draining), then drain the engine.
      await syncs?.stop();
      await engine.stop(drainMs);
      await heartbeat?.stop();
      await publicServer.close().catch((err: unknown) => logger.warn({ err: errorMessage(err) }, 'closing the public listener failed'));
      await admin?.close().catch(() => undefined);
      await store.close();
      logger.info({ flows: engine.stats() }, 'interchange stopped');
    })();
    return stopped;
  };
  return { loaded, engine, store, logger, adminAddress, httpAddress, done: () => Promise.all([engine.done(), syncs?.done()]).then(() => undefined), stop };
}

interface Heartbeat {
  /** Records this worker now; never rejects (a failure is logged). */
  beat(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Records this worker in the store's workers table every `everyMs` (PostgreSQL and SQLite),
 * so `ix status` lists the live workers and what each holds; removes it on stop. `info` is
 * read at each beat (addresses are added once listening).
 */
function startHeartbeat(store: Store, engine: Engine, logger: Logger, everyMs: number, info: Readonly<Record<string, unknown>>): Heartbeat {
  const record = store.heartbeat?.bind(store);
  if (!record) return { beat: () => Promise.resolve(), stop: () => Promise.resolve() };
  const [host = hostname(), pid = String(process.pid)] = engine.owner.split(':');
  const id = engine.owner;
  let failing = false;
  const beat = (): Promise<void> =>
    record({ id, host, pid: Number(pid) || process.pid, info: { ...info, flows: engine.flowNames } }).then(
      () => {
        if (failing) logger.info({ worker: id }, 'store reachable again');
        failing = false;
      },
      (err: unknown) => {
        if (!failing) logger.warn({ worker: id, err: errorMessage(err) }, 'heartbeat failed; the store may be unreachable');
        failing = true;
      },
    );
  const timer = setInterval(() => void beat(), everyMs);
  timer.unref();
  return {
    beat,
    async stop() {
      clearInterval(timer);
      await store.removeWorker?.(id).catch(() => undefined);
    },
  };
}

/**
 * The other workers live on the store: those whose heartbeat is recent, less the ones on this
 * host whose process is gone (a SIGKILLed worker's row stays fresh for a few seconds).
 */
function liveWorkersOf(store: Store, self: string): () => Promise<string[]> {
  return async () => ((await store.listWorkers?.()) ?? []).map((w) => w.id).filter((id) => id !== self && !processGone(id));
}

/**
 * A worker id is `host:pid:…`. On SQLite every worker runs on this machine, so one whose
 * process is gone (a SIGKILL, a power cut) can be told apart: what it held is given back at
 * once instead of when its leases expire. A process that is alive, or whose pid was reused,
 * keeps its holdings (they expire as usual).
 */
export async function releaseHoldingsOfGoneProcesses(store: Store, logger: Logger): Promise<void> {
  if (!store.holders || !store.releaseHoldings) return;
  const here = hostname();
  const gone = new Set<string>();
  for (const owner of await store.holders()) {
    const id = owner.split('/', 1)[0] as string;
    if (processGone(id, here)) gone.add(id);
  }
  for (const id of gone) {
    const n = await store.releaseHoldings(id);
    if (n > 0) logger.warn({ worker: id, released: n }, 'gave back what a stopped process held (queue items are ready again)');
  }
}

/** True when worker `id` (`host:pid:…`) ran on this host and its process is gone. */
function processGone(id: string, here = hostname()): boolean {
  const [host, pidText] = id.split(':');
  const pid = Number(pidText);
  return host === here && Number.isInteger(pid) && pid > 0 && pid !== process.pid && !processAlive(pid);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
