import { errorCatalog } from '../core/errors.js';
import type { ComponentDef, Registry, SourceDef } from './registry.js';
import type { TSchema } from '@sinclair/typebox';

type Json = Record<string, unknown>;

function typeOf(s: Json): string {
  if (Array.isArray(s['anyOf'])) return (s['anyOf'] as Json[]).map(typeOf).join(' \\| ');
  if (s['const'] !== undefined) return `\`${JSON.stringify(s['const'])}\``;
  if (Array.isArray(s['enum'])) return (s['enum'] as unknown[]).map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  if (s['type'] === 'array') return `${typeOf((s['items'] as Json | undefined) ?? {})}[]`;
  if (typeof s['type'] === 'string') return s['type'];
  return 'any';
}

function fieldRows(schema: Json, prefix = ''): string[] {
  const props = (schema['properties'] as Record<string, Json> | undefined) ?? {};
  const required = new Set((schema['required'] as string[] | undefined) ?? []);
  const rows: string[] = [];
  for (const [name, s] of Object.entries(props)) {
    const key = `${prefix}${name}`;
    const def = s['default'] !== undefined ? `\`${JSON.stringify(s['default'])}\`` : '';
    const desc = String(s['description'] ?? '').replace(/\n/g, ' ').replace(/\|/g, '\\|');
    rows.push(`| \`${key}\` | ${typeOf(s)} | ${required.has(name) && s['default'] === undefined ? 'yes' : ''} | ${def} | ${desc} |`);
    if (s['type'] === 'object' && s['properties']) rows.push(...fieldRows(s, `${key}.`));
  }
  return rows;
}

function component(slot: string, def: ComponentDef<TSchema, unknown>): string {
  const schema = JSON.parse(JSON.stringify(def.config)) as Json;
  const out = [`### \`${def.kind}\` ${slot}`, '', def.summary, ''];
  if (def.description) out.push(def.description, '');
  if (slot === 'source') out.push(clusterLine(def as SourceDef), '');
  if (schema['type'] === 'object' && schema['properties'] && Object.keys(schema['properties'] as Json).length > 0) {
    out.push('| field | type | required | default | description |', '|---|---|---|---|---|', ...fieldRows(schema), '');
  } else if (schema['type'] !== 'object') {
    out.push(`Config: ${typeOf(schema)}${schema['description'] ? ` — ${String(schema['description'])}` : ''}`, '');
  }
  for (const ex of def.examples ?? []) {
    const body = ex.yaml.split('\n').map((l) => `  ${l}`).join('\n');
    out.push(`Example — ${ex.title}:`, '', '```yaml', `${slot === 'step' ? '- ' : ''}${def.kind}:`, body, '```', '');
  }
  return out.join('\n');
}

function clusterLine(def: SourceDef): string {
  if (typeof def.cluster === 'function') return `Several workers: ${def.clusterDoc ?? 'depends on the config'}`;
  return def.cluster === 'every-worker'
    ? 'Several workers: runs on every worker, which share its traffic.'
    : 'Several workers: runs on one leader worker at a time (lease `source:<flow>`); another takes over from the checkpoint when it dies.';
}

/** The component reference, generated from the registry's declarations (docs/reference.md). */
export function renderReference(registry: Registry): string {
  const out = [
    '# Component reference',
    '',
    '<!-- Generated from the component registry by `npm run docs`; do not edit by hand. -->',
    '',
  ];
  const sections: [string, string, ReadonlyMap<string, ComponentDef<TSchema, unknown>>][] = [
    ['Sources', 'source', registry.sources],
    ['Steps', 'step', registry.steps],
    ['Sinks', 'sink', registry.sinks],
  ];
  for (const [title, slot, map] of sections) {
    out.push(`## ${title}`, '');
    for (const def of [...map.values()].sort((a, b) => a.kind.localeCompare(b.kind))) out.push(component(slot, def));
  }
  if (registry.sections.size > 0) {
    out.push('## Spec sections', '');
    for (const def of [...registry.sections.values()].sort((a, b) => a.key.localeCompare(b.key))) {
      out.push(`### \`${def.key}:\``, '', def.summary, '');
      if (def.description) out.push(def.description, '');
      const schema = JSON.parse(JSON.stringify(def.entry)) as Json;
      if (schema['properties']) out.push('Each entry:', '', '| field | type | required | default | description |', '|---|---|---|---|---|', ...fieldRows(schema), '');
    }
  }
  return `${out.join('\n').trimEnd()}\n`;
}

/** The error catalog as a table (docs/errors.md). */
export function renderErrors(): string {
  const rows = Object.entries(errorCatalog).map(([code, def]) => {
    const d = def as { message: string; retryable: boolean; status?: number };
    return `| \`${code}\` | ${d.message.replace(/\|/g, '\\|')} | ${d.retryable ? 'yes' : 'no'} | ${d.status ?? ''} |`;
  });
  return [
    '# Error codes',
    '',
    '<!-- Generated from src/core/errors.ts by `npm run docs`; do not edit by hand. -->',
    '',
    'Every error Interchange raises on purpose carries one of these codes. `{name}` parts are filled in with the details of the case.',
    '',
    '| code | message | retrying can help | HTTP status |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}
