import Fastify, { type FastifyInstance } from 'fastify';
import type { HttpRegistrar, HttpRoute } from '../core/component.js';

/**
 * A public listener for tests and benchmarks: mounts `HttpRoute`s (as push sources register
 * them) on Fastify with the raw body kept as bytes. The engine's listener does the same job.
 */
export class RouteHost implements HttpRegistrar {
  readonly app: FastifyInstance;

  constructor() {
    this.app = Fastify({ logger: false });
    this.app.removeAllContentTypeParsers();
    this.app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  }

  route(route: HttpRoute): void {
    this.app.route({
      method: route.method,
      url: route.path,
      bodyLimit: route.bodyLimit,
      handler: async (req, reply) => {
        const rawBody = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        const res = await route.handler({
          method: req.method,
          path: req.url.split('?')[0] ?? req.url,
          headers: req.headers,
          query: req.query as Record<string, unknown>,
          rawBody,
          remoteAddress: req.socket.remoteAddress ?? '',
        });
        void reply.code(res.status);
        if (res.headers) void reply.headers(res.headers);
        return res.body ?? '';
      },
    });
  }

  /** Listens on 127.0.0.1 (a free port unless given); returns the base URL. */
  async listen(port = 0): Promise<string> {
    await this.app.listen({ host: '127.0.0.1', port });
    const addr = this.app.server.address();
    if (addr === null || typeof addr === 'string') throw new Error('no address');
    return `http://127.0.0.1:${addr.port}`;
  }

  close(): Promise<void> {
    return this.app.close();
  }
}
