import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { request } from 'undici';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expandStored } from '../../core/message.js';
import { inboxQueue } from '../../store/types.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import { sourceContext, type TestSourceContext } from '../../testing/contexts.js';
import { RouteHost } from '../../testing/route-host.js';
import { parseBody, resolveSourceSettings, WebhookSource } from './source.js';
import type { WebhookSourceConfig } from './spec.js';

const dir = mkdtempSync(join(tmpdir(), 'ix-webhook-src-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const secret = 'whsec_' + Buffer.from('a-test-secret-for-webhooks-32byt').toString('base64');
const lib = new Webhook(secret);

function signed(id: string, body: string, at = new Date()): Record<string, string> {
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': lib.sign(id, at, body),
  };
}

describe('webhook source over HTTP', () => {
  let store: SqliteStore;
  let host: RouteHost;
  let base: string;
  let ctx: TestSourceContext;
  let run: Promise<void>;

  async function start(config: Partial<WebhookSourceConfig> = {}, tweak?: (c: TestSourceContext) => TestSourceContext): Promise<void> {
    store = new SqliteStore(join(dir, `s${n++}.db`), { synchronous: 'normal' });
    host = new RouteHost();
    ctx = sourceContext(store, host, { flow: 'orders', name: 'orders.source' });
    if (tweak) ctx = tweak(ctx);
    const source = new WebhookSource(resolveSourceSettings({ path: '/hooks/orders', verify: { scheme: 'standard-webhooks', secret }, ...config }));
    run = source.run(ctx);
    base = await host.listen();
  }

  const post = async (body: string, headers: Record<string, string>) => {
    const r = await request(`${base}/hooks/orders`, { method: 'POST', body, headers });
    const text = await r.body.text();
    return { status: r.statusCode, headers: r.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  const inbox = async () => (await store.claim(inboxQueue('orders'), 'peek', { limit: 100, leaseMs: 1 })).map((i) => i.message);

  beforeEach(() => {
    n++;
  });
  afterEach(async () => {
    ctx.stop();
    await run;
    await host.close();
    await store.close();
  });

  it('verifies, persists the raw body, headers and verdict, then answers 200', async () => {
    await start();
    const body = JSON.stringify({ type: 'order.created', total: 12.5 });
    const r = await post(body, { ...signed('msg_1', body), authorization: 'Bearer do-not-keep' });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ ok: true, id: 'msg_1' });
    const [stored] = await inbox();
    // the JSON body is kept once, as the raw text; the payload is parsed back from it
    expect(stored?.payload).toBeUndefined();
    expect(stored?.payloadFrom).toEqual({ meta: ['webhook', 'raw'], as: 'json' });
    const m = stored ? expandStored(stored) : undefined;
    expect(m?.id).toBe('msg_1');
    expect(m?.payload).toEqual({ type: 'order.created', total: 12.5 });
    expect(m?.headers['webhook-id']).toBe('msg_1');
    expect(m?.headers['authorization']).toBeUndefined();
    expect(m?.meta['webhook']).toMatchObject({ path: '/hooks/orders', verified: 'standard-webhooks', raw: body, remoteAddress: '127.0.0.1' });
  });

  it('keeps a text body once too; a form body keeps its parsed payload beside the raw text', async () => {
    await start();
    const text = 'plain words';
    expect((await post(text, { ...signed('t1', text), 'content-type': 'text/plain' })).status).toBe(200);
    const form = 'a=1&b=2&b=3';
    expect((await post(form, { ...signed('f1', form), 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(200);
    const stored = new Map((await inbox()).map((m) => [m.id, m]));
    expect(stored.get('t1')?.payloadFrom).toEqual({ meta: ['webhook', 'raw'], as: 'text' });
    expect(expandStored(stored.get('t1') as NonNullable<ReturnType<typeof stored.get>>).payload).toBe(text);
    expect(stored.get('f1')?.payloadFrom).toBeUndefined();
    expect(stored.get('f1')?.payload).toEqual({ a: '1', b: ['2', '3'] });
  });

  it('answers a repeated event id 2xx without persisting it again, before and after processing', async () => {
    await start();
    const body = JSON.stringify({ a: 1 });
    expect((await post(body, signed('msg_dup', body))).status).toBe(200);
    const again = await post(body, signed('msg_dup', body));
    expect(again.status).toBe(200);
    expect(again.body['duplicate']).toBe(true);
    // the engine processes and removes it from the inbox
    const claimed = await store.claim(inboxQueue('orders'), 'engine', { limit: 10, leaseMs: 10_000 });
    expect(claimed.map((c) => c.message.id)).toEqual(['msg_dup']);
    await store.complete(inboxQueue('orders'), 'engine', ['msg_dup']);
    const late = await post(body, signed('msg_dup', body));
    expect(late.status).toBe(200);
    expect(late.body['duplicate']).toBe(true);
    expect(await store.queueStats(inboxQueue('orders'))).toEqual({ ready: 0, scheduled: 0, leased: 0 });
  });

  it('answers 401 for bad, missing or stale signatures, 400 for a malformed body', async () => {
    await start();
    const body = JSON.stringify({ a: 1 });
    const h = signed('m1', body);
    expect((await post(body.replace('1', '2'), h)).status).toBe(401);
    expect((await post(body, { 'content-type': 'application/json' })).status).toBe(401);
    const stale = await post(body, signed('m2', body, new Date(Date.now() - 10 * 60_000)));
    expect(stale.status).toBe(401);
    expect(stale.body['error']).toEqual({ code: 'IX_WEBHOOK_UNAUTHORIZED', message: 'webhook signature refused: timestamp outside the tolerance' });
    const bad = '{"a":';
    const r = await post(bad, signed('m3', bad));
    expect(r.status).toBe(400);
    expect(await inbox()).toEqual([]);
  });

  it('answers 413 beyond the body limit', async () => {
    await start({ bodyLimit: 1024 });
    const body = JSON.stringify({ pad: 'x'.repeat(2000) });
    expect((await post(body, signed('big', body))).status).toBe(413);
    expect(await inbox()).toEqual([]);
  });

  it('answers 403 to an address outside the allowlist; believes X-Forwarded-For only from trusted proxies', async () => {
    await start({ allow: ['10.0.0.0/8', '2001:db8::/32'], trustedProxies: ['127.0.0.1/32'] });
    const body = JSON.stringify({ a: 1 });
    expect((await post(body, signed('p1', body))).status).toBe(403);
    expect((await post(body, { ...signed('p2', body), 'x-forwarded-for': '10.1.2.3' })).status).toBe(200);
    expect((await post(body, { ...signed('p3', body), 'x-forwarded-for': '2001:db8::7, 127.0.0.1' })).status).toBe(200);
    // a client cannot prepend an allowed address: the right-most untrusted hop is the client
    expect((await post(body, { ...signed('p4', body), 'x-forwarded-for': '10.1.2.3, 203.0.113.9' })).status).toBe(403);
    expect((await inbox()).map((m) => m.id)).toEqual(['p2', 'p3']);
  });

  it('answers 503 with Retry-After while shutting down', async () => {
    await start();
    ctx.setAccepting(false);
    const body = JSON.stringify({ a: 1 });
    const r = await post(body, signed('s1', body));
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('5');
    expect(await inbox()).toEqual([]);
  });

  it('answers 429 with Retry-After when intake is saturated, 503 when the store fails', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let failNext = false;
    await start({ maxPending: 2, retryAfter: '2s' }, (c) => ({
      ...c,
      persist: async (batch, options) => {
        if (failNext) throw new Error('disk I/O error');
        await gate;
        return c.persist(batch, options);
      },
    }));
    const body = JSON.stringify({ a: 1 });
    const first = post(body, signed('q1', body));
    const second = post(body, signed('q2', body));
    await new Promise((r) => setTimeout(r, 100));
    const third = await post(body, signed('q3', body));
    expect(third.status).toBe(429);
    expect(third.headers['retry-after']).toBe('2');
    open();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    failNext = true;
    const failed = await post(body, signed('q4', body));
    expect(failed.status).toBe(503);
    expect(JSON.stringify(failed.body)).not.toContain('disk');
    expect((await inbox()).map((m) => m.id).sort()).toEqual(['q1', 'q2']);
  });

  it('commits concurrent requests together and answers each', async () => {
    await start();
    const bodies = Array.from({ length: 200 }, (_, i) => JSON.stringify({ i }));
    const results = await Promise.all(bodies.map((b, i) => post(b, signed(`c${i}`, b))));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(await store.queueStats(inboxQueue('orders'))).toMatchObject({ ready: 200 });
  });
});

describe('parseBody', () => {
  it('parses JSON, forms and raw text by content type or by config', () => {
    expect(parseBody(Buffer.from('{"a":1}'), 'application/json; charset=utf-8', 'auto')).toEqual({ a: 1 });
    expect(parseBody(Buffer.from('{"a":1}'), 'application/vnd.api+json', 'auto')).toEqual({ a: 1 });
    expect(parseBody(Buffer.from('a=1&b=2&b=3'), 'application/x-www-form-urlencoded', 'auto')).toEqual({ a: '1', b: ['2', '3'] });
    expect(parseBody(Buffer.from('hello'), 'text/plain', 'auto')).toBe('hello');
    expect(parseBody(Buffer.from('{"a":1}'), 'text/plain', 'raw')).toBe('{"a":1}');
    expect(() => parseBody(Buffer.from(''), 'application/json', 'auto')).toThrow();
    expect(() => parseBody(Buffer.from('{'), undefined, 'json')).toThrow();
  });
});
