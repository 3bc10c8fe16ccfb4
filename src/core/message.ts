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
}

export function toStored(msg: Message): StoredMessage {
  const s: StoredMessage = { id: msg.id, payload: msg.payload, headers: msg.headers, meta: msg.meta };
  if (msg.key !== undefined) s.key = msg.key;
  return s;
}
