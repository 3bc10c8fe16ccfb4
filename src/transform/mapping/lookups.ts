import { readFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { IxError } from '../../core/errors.js';
import { FORBIDDEN_KEYS } from '../expression/ast.js';

export type LookupSpec = Record<string, unknown> | { file: string; key?: string; value?: string };

function invalid(mapping: string, detail: string): IxError {
  return new IxError('IX_MAPPING_INVALID', { mapping, detail });
}

function isFileSpec(v: LookupSpec): v is { file: string; key?: string; value?: string } {
  return typeof (v as { file?: unknown }).file === 'string' && Object.keys(v).every((k) => k === 'file' || k === 'key' || k === 'value');
}

/** Loads lookup tables once: inline objects, or CSV / JSON files relative to `baseDir`. */
export function loadLookups(mapping: string, specs: Readonly<Record<string, LookupSpec>> | undefined, baseDir: string): Map<string, Map<string, unknown>> {
  const out = new Map<string, Map<string, unknown>>();
  for (const [name, spec] of Object.entries(specs ?? {})) {
    if (!isFileSpec(spec)) {
      out.set(name, new Map(Object.entries(spec).filter(([k]) => !FORBIDDEN_KEYS.has(k))));
      continue;
    }
    const path = resolve(baseDir, spec.file);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      throw new IxError('IX_SPEC_FILE_NOT_FOUND', { path: `${spec.file} (lookup table "${name}" of mapping "${mapping}")` });
    }
    const ext = extname(path).toLowerCase();
    if (ext === '.json') out.set(name, fromJson(mapping, name, text, spec));
    else if (ext === '.csv') out.set(name, fromCsv(mapping, name, text, spec));
    else throw invalid(mapping, `lookup table "${name}": ${spec.file} is neither .csv nor .json`);
  }
  return out;
}

function fromJson(mapping: string, name: string, text: string, spec: { key?: string; value?: string }): Map<string, unknown> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw invalid(mapping, `lookup table "${name}": invalid JSON: ${(err as Error).message}`);
  }
  const table = new Map<string, unknown>();
  if (Array.isArray(data)) {
    const k = spec.key ?? 'key';
    const v = spec.value ?? 'value';
    for (const row of data) {
      if (row === null || typeof row !== 'object') continue;
      const key = (row as Record<string, unknown>)[k];
      if (key !== undefined && key !== null) table.set(String(key), (row as Record<string, unknown>)[v] ?? null);
    }
  } else if (data !== null && typeof data === 'object') {
    for (const [k, v] of Object.entries(data)) if (!FORBIDDEN_KEYS.has(k)) table.set(k, v);
  } else {
    throw invalid(mapping, `lookup table "${name}": JSON must be an object or an array of rows`);
  }
  return table;
}

/** RFC 4180 CSV: quoted fields, doubled quotes, CRLF or LF. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  if (text.charCodeAt(0) === 0xfeff) i = 1;
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += c;
    } else if (c === '"' && field === '') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      field = '';
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
    } else field += c;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

function fromCsv(mapping: string, name: string, text: string, spec: { key?: string; value?: string }): Map<string, unknown> {
  const rows = parseCsv(text);
  const header = rows[0];
  if (!header) throw invalid(mapping, `lookup table "${name}": the CSV file is empty`);
  const col = (want: string | undefined, dflt: number): number => {
    if (want === undefined) return dflt;
    const i = header.indexOf(want);
    if (i < 0) throw invalid(mapping, `lookup table "${name}": no column "${want}" (columns: ${header.join(', ')})`);
    return i;
  };
  const ki = col(spec.key, 0);
  const vi = col(spec.value, 1);
  const table = new Map<string, unknown>();
  for (const r of rows.slice(1)) {
    const k = r[ki];
    if (k !== undefined) table.set(k, r[vi] ?? null);
  }
  return table;
}
