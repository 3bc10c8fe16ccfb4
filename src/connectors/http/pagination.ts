import type { CallInput, CallResult, Endpoint, RestService } from './client.js';
import type { PaginateConfig } from './config.js';
import { readPath } from './template.js';

/** One page of a paginated endpoint. */
export interface Page {
  readonly items: unknown[];
  readonly result: CallResult;
  /** Where the page after this one starts (cursor, offset, page number or URL); undefined at the end. */
  readonly next: string | undefined;
  /** Where this page started (what to resume from to fetch it again). */
  readonly at: string | undefined;
}

export interface PaginateOptions {
  /** Resume position (from a previous page's `next`). */
  readonly start?: string;
  /** Safety bound on pages per run. @defaultValue 10000 */
  readonly maxPages?: number;
}

/** Items of a body: at `path` when given, the body itself when it is an array, else the body as one item. */
export function itemsOf(body: unknown, path: string | undefined): unknown[] {
  if (path) {
    const v = readPath(body, path);
    if (v === undefined || v === null) return [];
    return Array.isArray(v) ? v : [v];
  }
  if (Array.isArray(body)) return body;
  if (body === null || body === undefined || body === '') return [];
  return [body];
}

/** RFC 8288: the target of the `rel="next"` link in a Link header, resolved against `base`. */
export function nextLink(header: string | string[] | undefined, base: string): string | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join(',') : header;
  const re = /<([^>]*)>\s*((?:;\s*[^;,]+)*)/g;
  for (const m of text.matchAll(re)) {
    const params = m[2] ?? '';
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params);
    const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
    if (rels.includes('next')) return new URL(m[1] as string, base).href;
  }
  return undefined;
}

type Filled<T> = T extends unknown ? T & Required<T> : never;

function withDefaults(cfg: PaginateConfig | undefined): Filled<PaginateConfig> | undefined {
  if (!cfg) return undefined;
  switch (cfg.type) {
    case 'cursor':
      return { param: 'cursor', items: undefined, ...cfg } as Filled<PaginateConfig>;
    case 'offset':
      return { offsetParam: 'offset', limitParam: 'limit', limit: 100, ...cfg } as Filled<PaginateConfig>;
    case 'page':
      return { param: 'page', start: 1, ...cfg } as Filled<PaginateConfig>;
    case 'link':
      return cfg as Filled<PaginateConfig>;
  }
}

/**
 * Walks an endpoint's pages. Stops at the end the API signals, on an empty page, on a cursor
 * or link seen before (a server looping), or after `maxPages`.
 */
export async function* paginate(service: RestService, endpoint: Endpoint, input: CallInput, options: PaginateOptions = {}): AsyncGenerator<Page> {
  const cfg = withDefaults(endpoint.config.paginate);
  const itemsPath = cfg?.items ?? endpoint.config.items;
  const maxPages = options.maxPages ?? 10_000;
  if (!cfg) {
    const result = await service.call(endpoint, input);
    yield { items: result.notModified ? [] : itemsOf(result.body, itemsPath), result, next: undefined, at: undefined };
    return;
  }
  const seen = new Set<string>();
  let position: string | undefined = options.start;
  for (let n = 0; n < maxPages; n++) {
    let call: CallInput = input;
    switch (cfg.type) {
      case 'cursor':
        if (position !== undefined) call = { ...input, query: { ...input.query, [cfg.param]: position } };
        break;
      case 'offset':
        call = { ...input, query: { ...input.query, [cfg.offsetParam]: Number(position ?? 0), [cfg.limitParam]: cfg.limit } };
        break;
      case 'page': {
        const q: Record<string, unknown> = { ...input.query, [cfg.param]: Number(position ?? cfg.start) };
        if (cfg.sizeParam && cfg.size) q[cfg.sizeParam] = cfg.size;
        call = { ...input, query: q };
        break;
      }
      case 'link':
        if (position !== undefined) call = { ...input, url: position };
        break;
    }
    const result = await service.call(endpoint, call);
    const items = result.notModified ? [] : itemsOf(result.body, itemsPath);
    let next: string | undefined;
    if (items.length > 0) {
      switch (cfg.type) {
        case 'cursor': {
          const c = readPath(result.body, cfg.next);
          next = c === undefined || c === null || c === '' || c === false ? undefined : String(c);
          break;
        }
        case 'offset': {
          const offset = Number(position ?? 0) + items.length;
          const total = cfg.total ? Number(readPath(result.body, cfg.total)) : undefined;
          const short = items.length < cfg.limit;
          next = short || (total !== undefined && Number.isFinite(total) && offset >= total) ? undefined : String(offset);
          break;
        }
        case 'page': {
          const page = Number(position ?? cfg.start);
          const totalPages = cfg.totalPages ? Number(readPath(result.body, cfg.totalPages)) : undefined;
          const short = cfg.size !== undefined && items.length < cfg.size;
          next = short || (totalPages !== undefined && Number.isFinite(totalPages) && page >= totalPages) ? undefined : String(page + 1);
          break;
        }
        case 'link':
          next = nextLink(result.headers['link'], call.url ?? service.baseUrl.href);
          break;
      }
    }
    if (next !== undefined) {
      if (seen.has(next) || next === position) next = undefined; // a repeated cursor: stop, do not loop
      else seen.add(next);
    }
    yield { items, result, next, at: position };
    if (next === undefined) return;
    position = next;
  }
}
