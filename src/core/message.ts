/**
 * A message moving through a flow. `id` is stable across redelivery: sinks use it as the
 * idempotency key. A message whose `error` is set failed at its source (a malformed
 * record, say): the engine dead-letters it with that reason instead of running it.
 */
export interface Message {
  readonly id: string;
  key?: string;
  payload: unknown;
  headers: Record<string, string>;
  meta: Record<string, unknown>;
  /** Set by a source for a record it could not read; the engine dead-letters it. */
  error?: string;
}

export interface MessageInit {
  id: string;
  payload: unknown;
  key?: string;
  headers?: Record<string, string>;
  meta?: Record<string, unknown>;
  error?: string;
}

export function createMessage(init: MessageInit): Message {
  const msg: Message = {
    id: init.id,
    payload: init.payload,
    headers: init.headers ?? {},
    meta: init.meta ?? {},
  };
  if (init.key !== undefined) msg.key = init.key;
  if (init.error !== undefined) msg.error = init.error;
  return msg;
}

/** A child derived from `parent` (split, fan-out); its id stays stable across redelivery. */
export function deriveMessage(parent: Message, suffix: string | number, payload: unknown): Message {
  const msg: Message = {
    id: `${parent.id}/${suffix}`,
    payload,
    headers: { ...parent.headers },
    meta: { ...parent.meta },
  };
  if (parent.key !== undefined) msg.key = parent.key;
  return msg;
}

/** The wire form kept in the store (queues, dead letters). */
export interface StoredMessage {
  id: string;
  key?: string;
  payload: unknown;
  headers: Record<string, string>;
  meta: Record<string, unknown>;
  /** Set when the payload was left out because it is the text at this meta path (`expandStored`). */
  payloadFrom?: PayloadSource;
}

/**
 * Where a message's payload already is, as text in its meta (a webhook's raw body): parsed as
 * JSON, or the text itself. A store given one keeps the payload once instead of twice.
 */
export interface PayloadSource {
  readonly meta: readonly string[];
  readonly as: 'json' | 'text';
}

export function toStored(msg: Message): StoredMessage {
  const s: StoredMessage = { id: msg.id, payload: msg.payload, headers: msg.headers, meta: msg.meta };
  if (msg.key !== undefined) s.key = msg.key;
  return s;
}

/**
 * The stored form without the payload, which is the text at `from` in its meta: the caller
 * vouches that parsing that text gives the payload (a source, for what it just received).
 */
export function toStoredCompact(msg: Message, from: PayloadSource): StoredMessage {
  const s = { id: msg.id, headers: msg.headers, meta: msg.meta, payloadFrom: from } as StoredMessage;
  if (msg.key !== undefined) s.key = msg.key;
  return s;
}

/**
 * A stored message with its payload back (`toStoredCompact`); any other is returned as it is.
 * Text that is missing or does not parse gives a message with `error` set: the engine
 * dead-letters it with that reason.
 */
export function expandStored(s: StoredMessage): StoredMessage & { error?: string } {
  const from = s.payloadFrom;
  if (from === undefined) return s;
  const out: StoredMessage = { id: s.id, payload: undefined, headers: s.headers, meta: s.meta };
  if (s.key !== undefined) out.key = s.key;
  let text: unknown = s.meta;
  for (const k of from.meta) text = text !== null && typeof text === 'object' ? (text as Record<string, unknown>)[k] : undefined;
  if (typeof text !== 'string') return { ...out, error: `stored payload missing: no text at meta.${from.meta.join('.')}` };
  if (from.as === 'text') out.payload = text;
  else {
    try {
      out.payload = JSON.parse(text) as unknown;
    } catch (err) {
      return { ...out, error: `stored payload unreadable: meta.${from.meta.join('.')} is not JSON (${(err as Error).message})` };
    }
  }
  return out;
}
