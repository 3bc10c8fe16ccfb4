import { Cron } from 'croner';
import { IxError, errorMessage } from '../core/errors.js';
import type { Position } from './load.js';
import type { SpecProblem } from './problem.js';
import type { ComponentSpec, Spec, SpecPath, SyncSpec, SyncStreamSpec } from './types.js';

type Raw = Record<string, unknown>;

function component(v: unknown, path: SpecPath): ComponentSpec | undefined {
  if (v === undefined) return undefined;
  const [kind, config] = Object.entries(v as Raw)[0] as [string, unknown];
  return { kind, config, path: [...path, kind] };
}

/** The `syncs:` section as typed jobs (the schema already validated and defaulted it). */
export function shapeSyncs(raw: Record<string, Raw>): SyncSpec[] {
  return Object.entries(raw).map(([name, job]) => {
    const base = ['syncs', name] as const;
    const streams = Object.entries(job['streams'] as Record<string, Raw>).map(([sname, s]): SyncStreamSpec => {
      const path = [...base, 'streams', sname];
      const key = s['key'] as string | string[];
      const out: Record<string, unknown> = {
        name: sname,
        table: (s['table'] as string | undefined) ?? sname,
        key: Array.isArray(key) ? key : [key],
        mode: s['mode'],
        write: s['write'] ?? 'upsert',
        vanished: s['vanished'] ?? 'delete',
        conflict: s['conflict'] ?? 'source-wins',
        batchSize: s['batchSize'] ?? 1000,
        strict: s['strict'] ?? true,
        path,
      };
      for (const k of ['cursor', 'lookback', 'version', 'columns'] as const) if (s[k] !== undefined) out[k] = s[k];
      if (s['deleted'] !== undefined) {
        const d = s['deleted'] as Raw;
        out['deleted'] = { field: d['field'], equals: d['equals'] ?? true };
      }
      for (const k of ['from', 'events', 'target'] as const) {
        const c = component(s[k], [...path, k]);
        if (c) out[k] = c;
      }
      return out as unknown as SyncStreamSpec;
    });
    const spec: Record<string, unknown> = { name, concurrency: job['concurrency'] ?? 4, streams, path: base };
    for (const k of ['description', 'schedule', 'every'] as const) if (job[k] !== undefined) spec[k] = job[k];
    const target = component(job['target'], [...base, 'target']);
    if (target) spec['target'] = target;
    return spec as unknown as SyncSpec;
  });
}

/** What the schema cannot say: which fields each mode needs. */
export function checkSyncs(spec: Spec, locate: (path: SpecPath, key?: boolean) => Position, file: string): SpecProblem[] {
  const problems: SpecProblem[] = [];
  // A problem of a whole stream or job points at its name; one of a field at its value.
  const at = (path: SpecPath, detail: string): void => {
    const err = new IxError('IX_SPEC_INVALID', { path: path.filter((p) => p !== 'streams').join('.'), detail });
    const whole = wholeEntry(path);
    problems.push({ file, ...locate(path, whole), code: err.code, message: err.message });
  };
  const wholeEntry = (path: SpecPath): boolean => path.length === 2 || (path.length === 4 && path[2] === 'streams');
  for (const job of spec.syncs) {
    if (job.schedule !== undefined) {
      try {
        new Cron(job.schedule, { paused: true }).stop();
      } catch (err) {
        at([...job.path, 'schedule'], `is not a cron expression: ${errorMessage(err)}`);
      }
    }
    if (job.schedule !== undefined && job.every !== undefined) at([...job.path, 'every'], 'and schedule both given: use one');
    for (const s of job.streams) {
      const pull = s.mode !== 'realtime';
      const events = s.mode === 'realtime' || s.mode === 'backfill-realtime';
      if (pull && !s.from) at(s.path, `mode ${s.mode} needs \`from\` (where to read)`);
      if (!pull && s.from) at([...s.path, 'from'], 'is not read in mode realtime (use `events`)');
      if (events && !s.events) at(s.path, `mode ${s.mode} needs \`events\` (where change events come from)`);
      if (!events && s.events) at([...s.path, 'events'], `is only read in modes realtime and backfill-realtime, not ${s.mode}`);
      if (s.mode === 'incremental' && !s.cursor) at(s.path, 'mode incremental needs `cursor` (the field that grows with every change)');
      if (s.mode === 'backfill-realtime' && !s.version) at(s.path, 'mode backfill-realtime needs `version`: events and the copy meet by version, so none is applied twice');
      if (!s.target && !job.target) at(s.path, 'needs a `target` (here or on the job)');
      if (s.conflict !== 'source-wins' && !s.version) at([...s.path, 'conflict'], 'needs `version`: conflicts are detected by the version the sync last wrote');
      if (s.write === 'append' && s.conflict !== 'source-wins') at([...s.path, 'conflict'], 'has no meaning with write: append (rows are never replaced)');
      if (s.write === 'append' && typeof s.vanished === 'object') at([...s.path, 'vanished'], 'needs write: upsert');
      if (s.write === 'append' && s.deleted) at([...s.path, 'deleted'], 'needs write: upsert (an appended log keeps every record)');
      if (s.lookback !== undefined && s.mode !== 'incremental') at([...s.path, 'lookback'], 'is only used in mode incremental');
    }
  }
  return problems;
}
