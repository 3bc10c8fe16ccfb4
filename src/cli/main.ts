import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { startApp, type App } from '../app/app.js';
import { createRegistry } from '../app/registry.js';
import { DEFAULT_STORE, openStore } from '../app/store.js';
import { importOpenApi } from '../connectors/http/openapi-import.js';
import { enableEndpoints, listDisabledEndpoints } from '../connectors/webhook/endpoints.js';
import { IxError } from '../core/errors.js';
import { buildSpecSchema } from '../registry/schema.js';
import { loadSpecFile } from '../spec/load.js';
import { replayQueueFor, type Store } from '../store/types.js';
import { checkSpecs } from './check.js';
import { parseDuration } from '../core/units.js';
import { isPostgresUrl, migratePostgres } from '../store/postgres/index.js';
import { printError } from './output.js';
import { openSync } from '../app/sync.js';
import { Progress } from '../sync/progress.js';
import type { SyncRunRecord } from '../sync/service.js';

const program = new Command();
program.name('ix').description('Interchange: run integrations declared in one YAML spec.').version('0.1.0');

program
  .command('run')
  .description('Run every flow of a spec until its sources end or SIGTERM/SIGINT (then drain and exit 0).')
  .argument('<spec>', 'the spec file, e.g. integration.yaml')
  .option('--store <url>', 'store URL, overriding the spec (sqlite:PATH or postgres://…)')
  .option('--lease <duration>', "lease on claimed inbox messages, on a sync job's run and (up to 15s) on leader-only sources: how soon a dead worker's claims, sync runs and sources are taken over (e.g. 15s)")
  .option('--admin <host:port>', 'admin listener address, overriding the spec')
  .option('--no-admin', 'no admin listener')
  .option('--http <host:port>', 'public listener address, overriding the spec')
  .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error']).default('info'))
  .action(async (spec: string, opts: { store?: string; lease?: string; admin?: string | boolean; http?: string; logLevel: string }) => {
    // Signal handlers go in before the app starts: a SIGTERM during startup (a scheduler
    // stopping a worker that is still connecting) lets the start finish, then drains and exits 0.
    let app: App | undefined;
    let signalled: string | undefined;
    const onSignal = (sig: string): void => {
      if (signalled) {
        app?.logger.warn({ signal: sig }, 'second signal: exiting now; unfinished work stays durable');
        process.exit(1);
      }
      signalled = sig;
      if (app) shutDown(app, sig);
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
    for (const sig of heldSignals.splice(0)) onSignal(sig);
    try {
      app = await startApp({
        specFile: spec,
        ...(opts.store ? { store: opts.store } : {}),
        ...(opts.lease ? { leaseMs: parseDuration(opts.lease) } : {}),
        ...(opts.admin === false ? { admin: false as const } : typeof opts.admin === 'string' ? { admin: opts.admin } : {}),
        ...(opts.http ? { http: opts.http } : {}),
        logLevel: opts.logLevel,
      });
    } catch (err) {
      printError(err);
      process.exit(1);
    }
    const a = app;
    if (signalled) shutDown(a, signalled);
    await a.done();
    if (signalled) return;
    const failures = a.engine.failures();
    await a.stop();
    for (const f of failures) process.stderr.write(`error: flow ${f.flow}: ${f.error}\n`);
    finish(a, failures.length > 0 ? 1 : 0);

    function shutDown(running: App, sig: string): void {
      running.logger.info({ signal: sig }, 'shutting down: draining in-flight work');
      void running.stop().then(() => finish(running, 0));
    }

    function finish(running: App, code: number): void {
      const stats = running.engine.stats();
      for (const [flow, s] of Object.entries(stats)) {
        process.stderr.write(`flow ${flow}: in ${s.in}, delivered ${s.out}, dead-lettered ${s.deadLettered}, filtered ${s.filtered}, failed attempts ${s.failed}\n`);
      }
      const flush = (running.logger as { flush?: (cb?: () => void) => void }).flush;
      if (flush) flush.call(running.logger, () => process.exit(code));
      else process.exit(code);
      setTimeout(() => process.exit(code), 500).unref();
    }
  });

program
  .command('check')
  .description('Validate and lint specs: every problem as file:line:col, exit 1 on any.')
  .argument('<specs...>', 'spec files')
  .action(async (specs: string[]) => {
    const r = await checkSpecs(specs);
    for (const line of r.out) process.stdout.write(`${line}\n`);
    for (const line of r.problems) process.stderr.write(`${line}\n`);
    process.exit(r.ok ? 0 : 1);
  });

program
  .command('schema')
  .description("Print the spec's JSON Schema (generated from the registered components), for editors and CI.")
  .action(() => {
    process.stdout.write(`${JSON.stringify(buildSpecSchema(createRegistry()), null, 2)}\n`);
  });

const importCmd = program.command('import').description('Write spec blocks from API descriptions.');
importCmd
  .command('openapi')
  .description('Write a services: block (endpoints, parameters, auth, schemas) from an OpenAPI 3 document (JSON or YAML).')
  .argument('<file>', 'the OpenAPI document')
  .requiredOption('--service <name>', 'the service name in the spec')
  .option('--out <file>', 'write to this file instead of stdout')
  .action((file: string, opts: { service: string; out?: string }) => {
    const text = importOpenApi(parseYaml(readFileSync(file, 'utf8')) as unknown, { service: opts.service });
    if (opts.out) writeFileSync(opts.out, text);
    else process.stdout.write(text);
  });

interface StoreOpts {
  spec?: string;
  store?: string;
}

async function storeFor(opts: StoreOpts): Promise<Store> {
  if (opts.store) return openStore(opts.store, process.cwd());
  const specFile = opts.spec ?? (existsSync('integration.yaml') ? 'integration.yaml' : undefined);
  if (specFile) {
    const loaded = loadSpecFile(specFile, createRegistry());
    return openStore(loaded.spec.store ?? DEFAULT_STORE, loaded.baseDir);
  }
  return openStore(DEFAULT_STORE, process.cwd());
}

const dlq = program.command('dlq').description('Inspect and replay dead letters.');
const storeOptions = (c: Command): Command =>
  c.option('--spec <file>', 'use the store of this spec (default: ./integration.yaml if present)').option('--store <url>', 'store URL');

storeOptions(
  dlq
    .command('list')
    .description('List dead letters, oldest first.')
    .option('--flow <name>', 'only this flow')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'one JSON object per line'),
).action(async (opts: StoreOpts & { flow?: string; limit: string; json?: boolean }) => {
  await withStore(opts, async (store) => {
    const list = await store.listDeadLetters({ ...(opts.flow ? { flow: opts.flow } : {}), limit: Number(opts.limit) });
    if (opts.json) {
      for (const d of list) process.stdout.write(`${JSON.stringify(d)}\n`);
      return;
    }
    if (list.length === 0) {
      process.stdout.write('no dead letters\n');
      return;
    }
    process.stdout.write(`${'ID'.padEnd(6)} ${'FLOW'.padEnd(16)} ${'STAGE'.padEnd(14)} ${'TRIES'.padEnd(5)} ${'WHEN'.padEnd(24)} REASON\n`);
    for (const d of list) {
      const reason = d.reason.length > 100 ? `${d.reason.slice(0, 97)}...` : d.reason;
      process.stdout.write(
        `${String(d.id).padEnd(6)} ${d.flow.padEnd(16)} ${d.stage.padEnd(14)} ${String(d.attempts).padEnd(5)} ${new Date(d.createdAt).toISOString().padEnd(24)} ${reason}\n`,
      );
    }
    const total = await store.countDeadLetters(opts.flow);
    if (total > list.length) process.stdout.write(`(${list.length} of ${total}; use --limit)\n`);
  });
});

storeOptions(dlq.command('show').description('Show one dead letter with its payloads.').argument('<id>')).action(async (id: string, opts: StoreOpts) => {
  await withStore(opts, async (store) => {
    const d = await store.getDeadLetter(Number(id));
    if (!d) throw new IxError('IX_DLQ_NOT_FOUND', { id });
    process.stdout.write(`${JSON.stringify(d, null, 2)}\n`);
  });
});

storeOptions(
  dlq
    .command('replay')
    .description(
      "Send dead letters again: into the flow's inbox, or for a sink's dead letter (webhook) into that sink's outbox; a running `ix run` picks them up, else the next one.",
    )
    .argument('[ids...]', 'dead letter ids')
    .option('--all', 'every dead letter (of --flow, if given)')
    .option('--flow <name>', 'only this flow'),
).action(async (ids: string[], opts: StoreOpts & { all?: boolean; flow?: string }) => {
  await withStore(opts, async (store) => {
    let targets = ids.map(Number);
    if (opts.all) {
      targets = [];
      let after = 0;
      for (;;) {
        const page = await store.listDeadLetters({ ...(opts.flow ? { flow: opts.flow } : {}), afterId: after, limit: 1000 });
        if (page.length === 0) break;
        targets.push(...page.map((d) => d.id));
        after = page[page.length - 1]?.id ?? after;
      }
    }
    if (targets.length === 0) throw new Error('name dead letter ids, or --all');
    const moved = await store.replayDeadLetters(targets, replayQueueFor);
    const missing = targets.filter((t) => !moved.includes(t));
    process.stdout.write(`replayed ${moved.length} dead letter${moved.length === 1 ? '' : 's'}\n`);
    if (missing.length > 0) throw new IxError('IX_DLQ_NOT_FOUND', { id: missing.join(', ') });
  });
});

storeOptions(
  program
    .command('deliveries')
    .description('List outbound delivery attempts (webhook sinks), oldest first: time, status, latency, outcome, an excerpt of the answer.')
    .option('--flow <name>', 'only this flow')
    .option('--message <id>', 'only this message')
    .option('--after <id>', 'only attempts after this attempt id (paging)')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'one JSON object per line'),
).action(async (opts: StoreOpts & { flow?: string; message?: string; after?: string; limit: string; json?: boolean }) => {
  await withStore(opts, async (store) => {
    const list = await store.listDeliveryAttempts({
      ...(opts.flow ? { flow: opts.flow } : {}),
      ...(opts.message ? { messageId: opts.message } : {}),
      ...(opts.after ? { afterId: Number(opts.after) } : {}),
      limit: Number(opts.limit),
    });
    if (opts.json) {
      for (const a of list) process.stdout.write(`${JSON.stringify(a)}\n`);
      return;
    }
    if (list.length === 0) {
      process.stdout.write('no delivery attempts\n');
      return;
    }
    process.stdout.write(`${'ID'.padEnd(7)} ${'WHEN'.padEnd(24)} ${'FLOW'.padEnd(14)} ${'MESSAGE'.padEnd(20)} ${'TRY'.padEnd(3)} ${'STATUS'.padEnd(6)} ${'MS'.padEnd(6)} ${'OUTCOME'.padEnd(11)} DETAIL\n`);
    for (const a of list) {
      const detail = (a.error ?? a.responseExcerpt ?? '').replace(/\s+/g, ' ').slice(0, 80);
      const next = a.nextAt !== undefined ? ` (next ${new Date(a.nextAt).toISOString()})` : '';
      process.stdout.write(
        `${String(a.id).padEnd(7)} ${new Date(a.at).toISOString().padEnd(24)} ${a.flow.padEnd(14)} ${a.messageId.slice(0, 20).padEnd(20)} ${String(a.attempt).padEnd(3)} ${String(a.status ?? '-').padEnd(6)} ${String(a.latencyMs).padEnd(6)} ${a.outcome.padEnd(11)} ${detail}${next}\n`,
      );
    }
  });
});

const endpoints = program.command('endpoints').description('Webhook endpoints disabled after answering 410 Gone; enable them again.');

storeOptions(
  endpoints
    .command('list')
    .description('List disabled webhook endpoints: flow, sink, URL (without query or credentials), since when.')
    .option('--flow <name>', 'only this flow')
    .option('--json', 'one JSON object per line'),
).action(async (opts: StoreOpts & { flow?: string; json?: boolean }) => {
  await withStore(opts, async (store) => {
    const list = await listDisabledEndpoints(store, opts.flow);
    if (opts.json) {
      for (const { key: _key, ...d } of list) process.stdout.write(`${JSON.stringify(d)}\n`);
      return;
    }
    if (list.length === 0) {
      process.stdout.write('no disabled endpoints\n');
      return;
    }
    process.stdout.write(`${'FLOW'.padEnd(16)} ${'SINK'.padEnd(22)} ${'SINCE'.padEnd(24)} URL\n`);
    for (const d of list) {
      const since = d.since > 0 ? new Date(d.since).toISOString() : '-';
      process.stdout.write(`${d.flow.padEnd(16)} ${d.sink.padEnd(22)} ${since.padEnd(24)} ${d.url}\n`);
    }
  });
});

storeOptions(
  endpoints
    .command('enable')
    .description(
      'Enable disabled webhook endpoints again: a running `ix run` delivers to them within a second, else the next one does. Their dead letters stay dead letters: `ix dlq replay` sends them.',
    )
    .argument('[flow]', 'the flow whose endpoints to enable')
    .option('--sink <name>', 'only this sink of the flow (as `ix endpoints list` names it)')
    .option('--all', 'every disabled endpoint'),
).action(async (flow: string | undefined, opts: StoreOpts & { sink?: string; all?: boolean }) => {
  if (flow === undefined && !opts.all) throw new Error('name a flow, or --all');
  await withStore(opts, async (store) => {
    const enabled = await enableEndpoints(store, flow, opts.sink);
    for (const d of enabled) process.stdout.write(`enabled ${d.flow} ${d.sink} ${d.url}\n`);
    if (enabled.length === 0) process.stdout.write('no disabled endpoints matched\n');
  });
});

storeOptions(
  program
    .command('migrate')
    .description("Bring the store's schema up to this version of Interchange (PostgreSQL; SQLite migrates on open). Safe to repeat."),
).action(async (opts: StoreOpts) => {
  try {
    const url = storeUrlFor(opts);
    if (!isPostgresUrl(url)) {
      await (await storeFor(opts)).close();
      process.stdout.write('store is up to date (SQLite migrates when opened)\n');
      return;
    }
    const r = await migratePostgres({ url });
    process.stdout.write(
      r.applied.length === 0
        ? `schema ${r.schema} is up to date (version ${r.to})\n`
        : `schema ${r.schema}: version ${r.from} -> ${r.to} (${r.applied.map((m) => `${m.version} ${m.name}`).join('; ')})\n`,
    );
  } catch (err) {
    printError(err);
    process.exitCode = 1;
  }
});

storeOptions(
  program
    .command('status')
    .description('Show queues, dead letters and the live workers sharing the store, with what each holds.')
    .option('--json', 'one JSON object'),
).action(async (opts: StoreOpts & { json?: boolean }) => {
  await withStore(opts, async (store) => {
    const queues = await store.queueStats();
    const deadLetters = await store.countDeadLetters();
    const workers = store.listWorkers ? await store.listWorkers() : undefined;
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ store: store.kind, queues, deadLetters, workers })}\n`);
      return;
    }
    process.stdout.write(`store: ${store.kind}\nqueued: ${queues.ready} ready, ${queues.scheduled} scheduled, ${queues.leased} leased\ndead letters: ${deadLetters}\n`);
    if (!workers) {
      process.stdout.write('workers: (this store keeps no worker list; one process owns a SQLite file)\n');
      return;
    }
    process.stdout.write(`workers: ${workers.length} live\n`);
    for (const w of workers) {
      const holds = Object.entries(w.holds).map(([q, n]) => `${q}=${n}`);
      const age = Math.max(0, Math.round((Date.now() - w.heartbeatAt) / 1000));
      process.stdout.write(
        `  ${w.id}  pid ${w.pid} on ${w.host}, seen ${age}s ago, holds ${holds.length ? holds.join(' ') : 'nothing'}${w.leases.length ? `, leader of ${w.leases.join(' ')}` : ''}\n`,
      );
    }
  });
});

const sync = program.command('sync').description('Run data synchronization jobs (`syncs:`) and show their history.');

sync
  .command('run')
  .description('Run one sync job now: its pull streams at once (up to its concurrency), each resuming an interrupted run from its checkpoint.')
  .argument('<name>', 'the sync job, as named under syncs:')
  .option('--spec <file>', 'the spec file', 'integration.yaml')
  .option('--store <url>', 'store URL, overriding the spec')
  .option('--stream <names...>', 'only these streams')
  .option('--full-refresh', 'read everything again (vanished rows are deleted or marked as declared), then continue incrementally from there')
  .option('--from <cursor>', 'backfill: re-read records with a cursor after this value (the committed cursor is not moved)')
  .option('--to <cursor>', 'backfill: up to and including this cursor value')
  .option('--json', 'print the run record as JSON')
  .option('--no-progress', 'no progress bars')
  .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error']).default('warn'))
  .action(async (name: string, opts: { spec: string; store?: string; stream?: string[]; fullRefresh?: boolean; from?: string; to?: string; json?: boolean; progress: boolean; logLevel: string }) => {
    let opened;
    try {
      opened = await openSync({ specFile: opts.spec, ...(opts.store ? { store: opts.store } : {}), logLevel: opts.logLevel });
    } catch (err) {
      printError(err);
      process.exit(1);
    }
    const o = opened;
    const ac = new AbortController();
    const onSignal = (): void => {
      if (ac.signal.aborted) process.exit(1);
      process.stderr.write('stopping: the current batches finish, then the checkpoints stand\n');
      ac.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const progress = new Progress({ job: name, logger: o.logger, ...(opts.progress && process.stderr.isTTY ? { tty: process.stderr } : {}) });
    let code = 0;
    try {
      const record = await o.service.runExclusive(
        name,
        {
          signal: ac.signal,
          onProgress: progress.update,
          ...(opts.fullRefresh ? { fullRefresh: true } : {}),
          ...(opts.from !== undefined ? { from: opts.from } : {}),
          ...(opts.to !== undefined ? { to: opts.to } : {}),
          ...(opts.stream ? { streams: opts.stream } : {}),
        },
        'cli',
      );
      progress.stop();
      if (opts.json) process.stdout.write(`${JSON.stringify(record)}\n`);
      else process.stdout.write(formatRun(record));
      code = record.status === 'ok' ? 0 : 1;
    } catch (err) {
      progress.stop();
      printError(err, o.loaded.secretValues);
      code = 1;
    }
    await o.close();
    process.exit(code);
  });

sync
  .command('status')
  .description('Show the run history of sync jobs (start, end, read, written, conflicted, failed, final checkpoint), newest first.')
  .argument('[name]', 'one sync job (default: all)')
  .option('--spec <file>', 'the spec file', 'integration.yaml')
  .option('--store <url>', 'store URL, overriding the spec')
  .option('--limit <n>', 'runs per job', '10')
  .option('--json', 'one JSON object per run')
  .action(async (name: string | undefined, opts: { spec: string; store?: string; limit: string; json?: boolean }) => {
    let o;
    try {
      o = await openSync({ specFile: opts.spec, ...(opts.store ? { store: opts.store } : {}), logLevel: 'warn' });
    } catch (err) {
      printError(err);
      process.exit(1);
    }
    try {
      const jobs = name ? [o.service.job(name)] : o.service.jobs;
      for (const job of jobs) {
        const runs = (await o.service.history(job.name)).reverse().slice(0, Number(opts.limit));
        if (opts.json) {
          for (const r of runs) process.stdout.write(`${JSON.stringify(r)}\n`);
          continue;
        }
        const when = job.schedule ? `schedule ${job.schedule}` : job.every !== undefined ? `every ${String(job.every)}` : 'unscheduled';
        process.stdout.write(`sync ${job.name} (${job.streams.length} stream${job.streams.length === 1 ? '' : 's'}, ${when}): ${runs.length === 0 ? 'never run' : `${runs.length} recent run${runs.length === 1 ? '' : 's'}`}\n`);
        for (const r of runs) process.stdout.write(formatRun(r, '  '));
      }
    } catch (err) {
      printError(err);
      process.exitCode = 1;
    }
    await o.close();
  });

function formatRun(r: SyncRunRecord, indent = ''): string {
  const t = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  const secs = ((r.endedAt - r.startedAt) / 1000).toFixed(1);
  let out = `${indent}${t(r.startedAt)} -> ${t(r.endedAt)} (${secs}s) ${r.status.toUpperCase()} [${r.trigger}] read ${r.totals.read}, written ${r.totals.written}, deleted ${r.totals.deleted + r.totals.vanished}, conflicted ${r.totals.conflicted}, failed ${r.totals.failed}\n`;
  for (const s of r.streams) {
    out += `${indent}  ${s.stream.padEnd(16)} ${s.status.padEnd(7)} read ${s.read}, written ${s.written}, unchanged ${s.unchanged}, deleted ${s.deleted}, vanished ${s.vanished}, conflicted ${s.conflicted}, failed ${s.failed}; checkpoint ${JSON.stringify(s.checkpoint) ?? '-'}${s.error ? `\n${indent}    error: ${s.error}` : ''}\n`;
  }
  return out;
}

function storeUrlFor(opts: StoreOpts): string {
  if (opts.store) return opts.store;
  const specFile = opts.spec ?? (existsSync('integration.yaml') ? 'integration.yaml' : undefined);
  if (specFile) return loadSpecFile(specFile, createRegistry()).spec.store ?? DEFAULT_STORE;
  return DEFAULT_STORE;
}

async function withStore(opts: StoreOpts, fn: (store: Store) => Promise<void>): Promise<void> {
  let store: Store | undefined;
  try {
    store = await storeFor(opts);
    await fn(store);
  } catch (err) {
    printError(err);
    process.exitCode = 1;
  } finally {
    await store?.close();
  }
}

/** Signals `bin/ix.js` received while the CLI loaded; `ix run` handles them once its handlers are in. */
const heldSignals: string[] = [];

/**
 * Runs the CLI. `held`: SIGTERM / SIGINT that arrived before this module was loaded; `ix run`
 * starts and shuts down cleanly, any other command ends as the signal would have ended it.
 */
export async function main(argv: string[], held: readonly string[] = []): Promise<void> {
  if (held.length > 0 && argv[2] !== 'run') {
    process.kill(process.pid, held[0] as NodeJS.Signals);
    return;
  }
  heldSignals.push(...held);
  await program.parseAsync(argv);
}

