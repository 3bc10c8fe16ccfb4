import { createHash } from 'node:crypto';
import type { HttpRequest, HttpResponse, Source, SourceContext } from '../../core/component.js';
import { IxError, errorMessage, type ErrorCode } from '../../core/errors.js';
import { createMessage, type PayloadSource } from '../../core/message.js';
import { parseDuration, parseSize } from '../../core/units.js';
import { CidrSet, clientAddress } from './ip.js';
import type { WebhookSourceConfig } from './spec.js';
import { createVerifier, header, type Verifier } from './verify.js';

/** Headers never copied into the message (credentials of the sender's infrastructure). */
const DROPPED_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);
const RAW_AS_JSON: PayloadSource = { meta: ['webhook', 'raw'], as: 'json' };
const RAW_AS_TEXT: PayloadSource = { meta: ['webhook', 'raw'], as: 'text' };

/** Resolved settings of one webhook source. */
export interface WebhookSourceSettings {
  readonly path: string;
  readonly method: 'POST' | 'PUT';
  readonly verifier: Verifier;
  readonly allow: CidrSet | undefined;
  readonly trustedProxies: CidrSet | undefined;
  readonly bodyLimit: number;
  readonly body: 'auto' | 'json' | 'form' | 'raw';
  readonly idHeader: string | undefined;
  readonly dedupeWindowMs: number;
  readonly maxPending: number;
  readonly retryAfterSeconds: number;
}

export function resolveSourceSettings(config: WebhookSourceConfig): WebhookSourceSettings {
  const v = config.verify;
  const verifier = createVerifier({
    scheme: v.scheme,
    ...(v.secret !== undefined ? { secret: v.secret } : {}),
    ...(v.publicKey !== undefined ? { publicKey: v.publicKey } : {}),
    toleranceMs: parseDuration((v.tolerance as string | number | undefined) ?? '5m'),
    ...(v.algorithm ? { algorithm: v.algorithm } : {}),
    ...(v.header ? { header: v.header } : {}),
    ...(v.encoding ? { encoding: v.encoding } : {}),
    ...(v.prefix !== undefined ? { prefix: v.prefix } : {}),
    ...(v.signed ? { signed: v.signed } : {}),
    ...(v.timestampHeader ? { timestampHeader: v.timestampHeader } : {}),
    ...(v.idHeader ? { idHeader: v.idHeader } : {}),
  });
  return {
    path: config.path,
    method: config.method ?? 'POST',
    verifier,
    allow: config.allow && config.allow.length > 0 ? new CidrSet(config.allow) : undefined,
    trustedProxies: config.trustedProxies && config.trustedProxies.length > 0 ? new CidrSet(config.trustedProxies) : undefined,
    bodyLimit: parseSize((config.bodyLimit as string | number | undefined) ?? '1MiB'),
    body: config.body ?? 'auto',
    idHeader: config.idHeader?.toLowerCase(),
    dedupeWindowMs: parseDuration((config.dedupeWindow as string | number | undefined) ?? '7d'),
    maxPending: config.maxPending ?? 2000,
    retryAfterSeconds: Math.max(1, Math.ceil(parseDuration((config.retryAfter as string | number | undefined) ?? '5s') / 1000)),
  };
}

function errorResponse(code: ErrorCode, params: Record<string, string | number>, extra: Record<string, string> = {}, status?: number): HttpResponse {
  const e = new IxError(code, params);
  return { status: status ?? e.status ?? 500, headers: extra, body: { error: { code, message: e.message } } };
}

/**
 * The `webhook` source: verifies, persists, then answers. A request is answered 2xx only once
 * its message is in the flow's durable inbox; the engine processes the inbox afterwards, under
 * the flow's error policy. The engine commits concurrent requests together (group commit), so
 * the store's fsync is shared by everything that arrived meanwhile. Each id is remembered for
 * `dedupeWindow` from its arrival, so a sender's retry is answered as a duplicate.
 */
export class WebhookSource implements Source {
  private ctx: SourceContext | undefined;
  private inFlight = 0;

  readonly routes: readonly { readonly method: string; readonly path: string }[];

  constructor(private readonly s: WebhookSourceSettings) {
    this.routes = [{ method: s.method, path: s.path }];
  }

  async run(ctx: SourceContext): Promise<void> {
    this.ctx = ctx;
    ctx.http.route({ method: this.s.method, path: this.s.path, bodyLimit: this.s.bodyLimit, handler: (req) => this.handle(req) });
    ctx.logger.info({ path: this.s.path, scheme: this.s.verifier.scheme }, 'webhook route registered');
    if (ctx.signal.aborted) return;
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
  }

  /** Answers one request. Exposed for tests and for hosts that route themselves. */
  async handle(req: HttpRequest): Promise<HttpResponse> {
    const ctx = this.ctx;
    const retryAfter = { 'retry-after': String(this.s.retryAfterSeconds) };
    if (!ctx || !ctx.accepting() || ctx.signal.aborted) return errorResponse('IX_ENGINE_SHUTDOWN', {}, retryAfter);
    if (req.rawBody.length > this.s.bodyLimit) return errorResponse('IX_HTTP_TOO_LARGE', { limit: this.s.bodyLimit });

    const address = clientAddress(req.remoteAddress, req.headers['x-forwarded-for'], this.s.trustedProxies);
    if (this.s.allow && !this.s.allow.has(address)) return errorResponse('IX_WEBHOOK_FORBIDDEN', { address });

    const now = ctx.clock.now();
    const verdict = this.s.verifier.verify(req.rawBody, req.headers, now);
    if (!verdict.ok) {
      ctx.logger.warn({ path: this.s.path, address, reason: verdict.reason }, 'webhook signature refused');
      return errorResponse('IX_WEBHOOK_UNAUTHORIZED', { reason: verdict.reason });
    }

    let payload: unknown;
    const kind = bodyKind(header(req.headers, 'content-type'), this.s.body);
    try {
      payload = parseBody(req.rawBody, header(req.headers, 'content-type'), kind);
    } catch (err) {
      return errorResponse('IX_HTTP_BAD_REQUEST', { detail: `malformed body: ${errorMessage(err)}` });
    }

    if (this.inFlight >= this.s.maxPending) return errorResponse('IX_ENGINE_SATURATED', {}, retryAfter);

    const id = verdict.id ?? (this.s.idHeader ? header(req.headers, this.s.idHeader) : undefined) ?? `sha256:${createHash('sha256').update(req.rawBody).digest('hex')}`;
    const headers: Record<string, string> = {};
    for (const k in req.headers) {
      const v = req.headers[k];
      if (v === undefined || DROPPED_HEADERS.has(k)) continue;
      headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    const raw = req.rawBody.toString('utf8');
    const rawIsText = Buffer.byteLength(raw) === req.rawBody.length && !raw.includes('\uFFFD');
    const msg = createMessage({
      id,
      payload,
      headers,
      meta: {
        webhook: {
          path: this.s.path,
          receivedAt: now,
          remoteAddress: address,
          verified: this.s.verifier.scheme,
          ...(verdict.timestamp !== undefined ? { timestamp: verdict.timestamp } : {}),
          ...(rawIsText ? { raw } : { rawBase64: req.rawBody.toString('base64') }),
        },
      },
    });

    this.inFlight++;
    try {
      // a JSON or text body is the raw text already kept in meta: the inbox stores it once
      const from = !rawIsText ? undefined : kind === 'json' ? RAW_AS_JSON : kind === 'raw' ? RAW_AS_TEXT : undefined;
      const r = await ctx.persist([msg], from ? { dedupeTtlMs: this.s.dedupeWindowMs, payloadFrom: from } : { dedupeTtlMs: this.s.dedupeWindowMs });
      const duplicate = r.persisted ? r.persisted[0] === false : r.duplicates > 0;
      return { status: 200, body: { ok: true, id, ...(duplicate ? { duplicate: true } : {}) } };
    } catch (err) {
      const code = err instanceof IxError ? err.code : undefined;
      if (code === 'IX_ENGINE_SATURATED') return errorResponse('IX_ENGINE_SATURATED', {}, retryAfter);
      ctx.logger.error({ path: this.s.path, err: errorMessage(err) }, 'webhook not persisted; the sender will retry');
      if (code === 'IX_ENGINE_SHUTDOWN') return errorResponse('IX_ENGINE_SHUTDOWN', {}, retryAfter);
      return errorResponse('IX_STORE_UNAVAILABLE', { detail: 'not persisted' }, retryAfter, 503);
    } finally {
      this.inFlight--;
    }
  }
}

/** Parses a body as the config and Content-Type say. Throws on malformed JSON or form data. */
/** How a body is read: by `mode`, or under `auto` by its content type. */
export function bodyKind(contentType: string | undefined, mode: 'auto' | 'json' | 'form' | 'raw'): 'json' | 'form' | 'raw' {
  if (mode !== 'auto') return mode;
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  return type === 'application/json' || type.endsWith('+json') ? 'json' : type === 'application/x-www-form-urlencoded' ? 'form' : 'raw';
}

export function parseBody(raw: Buffer, contentType: string | undefined, mode: 'auto' | 'json' | 'form' | 'raw'): unknown {
  const kind = bodyKind(contentType, mode);
  const text = raw.toString('utf8');
  if (kind === 'json') {
    if (text.trim() === '') throw new SyntaxError('empty JSON body');
    return JSON.parse(text) as unknown;
  }
  if (kind === 'form') {
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of new URLSearchParams(text)) {
      const prev = out[k];
      out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    return out;
  }
  return text;
}
