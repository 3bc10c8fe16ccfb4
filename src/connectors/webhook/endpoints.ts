import type { DurableStore } from '../../core/durable.js';

/**
 * Webhook endpoints disabled after a 410 Gone. A sink marks its endpoint with the checkpoint
 * `<outbox>:disabled:<url>` (value `{ "at": ms }`), where the outbox is `outbox:<flow>:<sink>`;
 * a new URL is not marked. Deleting the mark enables the endpoint again: a running sink
 * looks at the mark every second while disabled.
 */
const MARK = ':disabled:';
const OUTBOX = 'outbox:';

export function disabledKey(outbox: string, href: string): string {
  return `${outbox}${MARK}${href}`;
}

export interface DisabledEndpoint {
  readonly flow: string;
  readonly sink: string;
  /** The endpoint without its query or credentials (they may hold a token). */
  readonly url: string;
  /** When it answered 410 (ms since epoch). */
  readonly since: number;
  /** The store checkpoint that marks it. */
  readonly key: string;
}

/** The URL as it may be shown: scheme, host, port and path; no user info, query or fragment. */
function shown(href: string): string {
  try {
    const u = new URL(href);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(unparseable URL)';
  }
}

function parse(key: string, value: string): DisabledEndpoint | undefined {
  if (!key.startsWith(OUTBOX)) return undefined;
  const mark = key.indexOf(MARK);
  if (mark < 0) return undefined;
  const outbox = key.slice(OUTBOX.length, mark);
  const colon = outbox.indexOf(':');
  if (colon <= 0) return undefined;
  let since = 0;
  try {
    const at = (JSON.parse(value) as { at?: unknown }).at;
    if (typeof at === 'number') since = at;
  } catch {
    // a mark with an unreadable value still disables: list it with an unknown time
  }
  return { flow: outbox.slice(0, colon), sink: outbox.slice(colon + 1), url: shown(key.slice(mark + MARK.length)), since, key };
}

type EndpointStore = Pick<DurableStore, 'deleteCheckpoint'> & { listCheckpoints(prefix: string): Promise<{ key: string; value: string }[]> };

/** Disabled endpoints, of one flow when given, by flow and sink. */
export async function listDisabledEndpoints(store: EndpointStore, flow?: string): Promise<DisabledEndpoint[]> {
  const marks = await store.listCheckpoints(flow === undefined ? OUTBOX : `${OUTBOX}${flow}:`);
  return marks.flatMap((m) => parse(m.key, m.value) ?? []);
}

/** Enables the disabled endpoints of `flow` (of its sink `sink` only, when given); returns them. */
export async function enableEndpoints(store: EndpointStore, flow: string | undefined, sink?: string): Promise<DisabledEndpoint[]> {
  const list = (await listDisabledEndpoints(store, flow)).filter((d) => sink === undefined || d.sink === sink);
  for (const d of list) await store.deleteCheckpoint(d.key);
  return list;
}
