import { randomUUID } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { HttpRequest, HttpResponse, Source, SourceContext } from '../../core/component.js';
import { errorMessage, IxError } from '../../core/errors.js';
import { createMessage, type Message } from '../../core/message.js';
import { parseSize } from '../../core/units.js';
import { defineSource, type Registry } from '../../registry/registry.js';
import { SizeType } from '../../registry/types.js';

export const httpServerConfig = Type.Object(
  {
    path: Type.String({ pattern: '^/', description: 'The route on the public listener, e.g. /ingest/orders.' }),
    bodyLimit: Type.Optional(SizeType({ default: '1MiB', description: 'Largest accepted body; larger requests get 413.' })),
    idHeader: Type.String({
      default: 'idempotency-key',
      description: 'Request header whose value is the message id: a retried request with the same id is accepted once. A new id is made when it is absent.',
    }),
  },
  { additionalProperties: false },
);

function header(req: HttpRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Accepts POSTed JSON (one object, or an array of them) and commits it to the flow's durable
 * inbox before answering 202: a crash after the answer loses nothing, a crash before it makes
 * the sender retry. Answers 400 (malformed JSON), 413 (too large), 415 (not JSON), 503
 * (shutting down).
 */
export const httpServerSource = defineSource({
  cluster: 'every-worker',
  kind: 'http-server',
  summary: 'Receives JSON over HTTP POST and persists it before answering.',
  config: httpServerConfig,
  examples: [{ title: 'Order ingest', yaml: 'path: /ingest/orders' }],
  create: (config): Source => {
    const limit = parseSize(config.bodyLimit ?? '1MiB');
    const idHeader = config.idHeader.toLowerCase();
    return {
      async run(ctx: SourceContext): Promise<void> {
        const handler = async (req: HttpRequest): Promise<HttpResponse> => {
          if (!ctx.accepting()) return problem(new IxError('IX_ENGINE_SHUTDOWN'), { 'retry-after': '5' });
          const type = header(req, 'content-type') ?? '';
          if (!/^application\/([\w.+-]*\+)?json\b/i.test(type)) return problem(new IxError('IX_HTTP_UNSUPPORTED_MEDIA', { type: JSON.stringify(type) }));
          if (req.rawBody.length > limit) return problem(new IxError('IX_HTTP_TOO_LARGE', { limit }));
          let body: unknown;
          try {
            body = JSON.parse(req.rawBody.toString('utf8'));
          } catch (err) {
            return problem(new IxError('IX_HTTP_BAD_REQUEST', { detail: `malformed JSON: ${errorMessage(err)}` }));
          }
          const id = header(req, idHeader) ?? randomUUID();
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(req.headers)) {
            if (v !== undefined && k !== 'authorization' && k !== 'cookie') headers[k] = Array.isArray(v) ? v.join(', ') : v;
          }
          const items = Array.isArray(body) ? body : [body];
          const batch: Message[] = items.map((payload, i) =>
            createMessage({ id: Array.isArray(body) ? `${id}/${i}` : id, payload, headers, meta: { receivedAt: ctx.clock.now() } }),
          );
          try {
            const r = await ctx.persist(batch);
            return { status: 202, body: { accepted: r.accepted, duplicates: r.duplicates, id } };
          } catch (err) {
            if (err instanceof IxError && err.code === 'IX_ENGINE_SHUTDOWN') return problem(err, { 'retry-after': '5' });
            ctx.logger.error({ err: errorMessage(err) }, 'ingest could not persist');
            return { status: 503, headers: { 'retry-after': '1' }, body: { error: 'IX_STORE_UNAVAILABLE', message: 'could not persist the request; retry' } };
          }
        };
        ctx.http.route({ method: 'POST', path: config.path, bodyLimit: limit, handler });
        ctx.logger.info({ path: config.path }, 'ingest route ready');
        if (ctx.signal.aborted) return;
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      },
    };
  },
});

function problem(err: IxError, headers?: Record<string, string>): HttpResponse {
  return { status: err.status ?? 500, ...(headers ? { headers } : {}), body: { error: err.code, message: err.message } };
}

export function register(registry: Registry): void {
  registry.registerSource(httpServerSource);
}
