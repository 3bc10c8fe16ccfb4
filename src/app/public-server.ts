import type FastifyModule from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { HttpRegistrar, HttpRoute } from '../core/component.js';
import { errorMessage } from '../core/errors.js';
import { lazyModule } from '../core/lazy-module.js';
import type { Logger } from '../core/logger.js';

const fastify = lazyModule<typeof FastifyModule>('fastify');

/**
 * The one public listener. Routes can be added while it runs (push sources register theirs
 * when they start); requests are dispatched by method and path to the source's handler with
 * the raw body bytes.
 */
export class PublicServer implements HttpRegistrar {
  private app: FastifyInstance | undefined;
  private readonly routes = new Map<string, HttpRoute>();
  private started = false;

  constructor(
    private readonly logger: Logger,
    private readonly maxBodyBytes = 64 * 1024 * 1024,
  ) {}

  /** Built when it first listens: a spec without push sources never loads fastify. */
  private build(): FastifyInstance {
    const maxBodyBytes = this.maxBodyBytes;
    const app = fastify()({ logger: false, bodyLimit: maxBodyBytes, trustProxy: false, return503OnClosing: true });
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    app.all('/*', async (req, reply) => {
      const path = req.url.split('?', 1)[0] as string;
      const route = this.routes.get(`${req.method} ${path}`);
      if (!route) {
        const allowed = [...this.routes.values()].filter((r) => r.path === path).map((r) => r.method);
        if (allowed.length > 0) return reply.code(405).header('allow', allowed.join(', ')).send({ error: 'method not allowed' });
        return reply.code(404).send({ error: 'not found' });
      }
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > route.bodyLimit) return reply.code(413).send({ error: 'IX_HTTP_TOO_LARGE', message: `request body exceeds ${route.bodyLimit} bytes` });
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      try {
        const res = await route.handler({
          method: req.method,
          path,
          headers: req.headers,
          query: req.query as Record<string, unknown>,
          rawBody: raw,
          remoteAddress: req.socket.remoteAddress ?? '',
        });
        reply.code(res.status);
        if (res.headers) reply.headers(res.headers);
        return reply.send(res.body ?? '');
      } catch (err) {
        this.logger.error({ path, err: errorMessage(err) }, 'route handler failed');
        return reply.code(500).send({ error: 'internal error' });
      }
    });
    app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
      const status = err.statusCode ?? 500;
      if (status === 413) return reply.code(413).send({ error: 'IX_HTTP_TOO_LARGE', message: err.message });
      return reply.code(status).send({ error: status >= 500 ? 'internal error' : err.message });
    });
    return app;
  }

  route(route: HttpRoute): void {
    const key = `${route.method} ${route.path}`;
    if (this.routes.has(key)) throw new Error(`route ${key} is declared twice`);
    this.routes.set(key, route);
  }

  get hasRoutes(): boolean {
    return this.routes.size > 0;
  }

  async listen(host: string, port: number): Promise<string> {
    const app = (this.app ??= this.build());
    await app.listen({ host, port });
    this.started = true;
    const addr = app.server.address();
    return typeof addr === 'object' && addr ? `${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}` : `${host}:${port}`;
  }

  async close(): Promise<void> {
    if (this.started) await this.app?.close();
  }
}
