import type { Redis } from 'ioredis';
import type { Step } from '../../core/component.js';
import { IxError, errorMessage, permanent } from '../../core/errors.js';
import type { Message } from '../../core/message.js';
import { parseDuration } from '../../core/units.js';
import { compileDestination, redactUrl } from '../broker-kit.js';
import { sharedRedis } from './client.js';
import type { CacheStepConfig } from './config.js';

/**
 * A Redis-backed cache step. `get` enriches a message with the value cached under a key
 * templated from it; `set` stores (part of) the payload with a TTL; `dedupe` lets the first
 * message per key through within the TTL and filters later ones — the same message id seen
 * again (a redelivery) passes, so dedupe never loses an at-least-once retry.
 */
export class CacheStep implements Step {
  private client: Redis | undefined;
  private readonly key: (m: Message) => string;
  private readonly ttlMs: number | undefined;

  constructor(private readonly c: CacheStepConfig) {
    const k = compileDestination(c.key);
    this.key = (m) => c.prefix + k(m);
    this.ttlMs = c.ttl === undefined ? undefined : parseDuration(c.ttl);
    if (c.op === 'dedupe' && this.ttlMs === undefined) throw new TypeError('cache: op dedupe needs a ttl');
  }

  private async redis(): Promise<Redis> {
    if (!this.client) {
      const r = sharedRedis(this.c.url, 'ix:cache');
      r.on('error', () => undefined);
      this.client = r;
      try {
        await r.connect();
      } catch (err) {
        this.client = undefined;
        r.disconnect();
        throw new IxError('IX_STEP_FAILED', { step: 'cache', detail: `cannot connect to ${redactUrl(this.c.url)}: ${errorMessage(err)}` }, { cause: err });
      }
    }
    return this.client;
  }

  async process(msg: Message): Promise<Message | null> {
    const key = this.key(msg);
    const r = await this.redis();
    if (this.c.op === 'get') {
      const raw = await r.get(key);
      if (raw === null) {
        if (this.c.onMiss === 'filter') return null;
        if (this.c.onMiss === 'fail') throw permanent(`cache: no value under ${key}`);
        return msg;
      }
      const value = JSON.parse(raw) as unknown;
      const into = this.c.into ?? 'cached';
      const payload = msg.payload !== null && typeof msg.payload === 'object' && !Array.isArray(msg.payload) ? { ...(msg.payload as object) } : {};
      setPath(payload as Record<string, unknown>, into, value);
      msg.payload = payload;
      return msg;
    }
    if (this.c.op === 'set') {
      const value = this.c.value === undefined ? msg.payload : getPath(msg.payload, this.c.value);
      const text = JSON.stringify(value ?? null);
      if (this.ttlMs !== undefined) await r.set(key, text, 'PX', this.ttlMs);
      else await r.set(key, text);
      return msg;
    }
    // dedupe: the first message id to claim the key owns it for the TTL
    const res = await r.set(key, msg.id, 'PX', this.ttlMs as number, 'NX');
    if (res === 'OK') return msg;
    const owner = await r.get(key);
    if (owner === msg.id || owner === null) return msg;
    msg.meta['dedupedBy'] = owner;
    return null;
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.quit().catch(() => undefined);
  }
}

function getPath(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const s of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[s];
  }
  return cur;
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const segs = path.split('.');
  let cur = obj;
  for (const s of segs.slice(0, -1)) {
    const next = cur[s];
    const copy: Record<string, unknown> = next !== null && typeof next === 'object' ? { ...(next as Record<string, unknown>) } : {};
    cur[s] = copy;
    cur = copy;
  }
  cur[segs[segs.length - 1] as string] = value;
}
