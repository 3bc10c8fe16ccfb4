import type FastifyModule from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { lazyModule } from '../core/lazy-module.js';

/** Loaded when the admin listener is enabled, not at start-up. */
const fastify = lazyModule<typeof FastifyModule>('fastify');

export interface AdminState {
  /** Live: the process runs its event loop. */
  live(): boolean;
  /** Ready: the store is open and the flows run (false while starting and shutting down). */
  ready(): boolean;
  /** Per-flow counters for /health/ready's body. */
  flows(): Record<string, unknown>;
}

/** The admin listener: /health/live, /health/ready and Prometheus /metrics. Loopback by default. */
export function createAdminServer(state: AdminState, metrics: Registry): FastifyInstance {
  const app = fastify()({ logger: false });
  app.get('/health/live', async (_req, reply) => reply.code(state.live() ? 200 : 503).send({ status: state.live() ? 'live' : 'down' }));
  app.get('/health/ready', async (_req, reply) => {
    const ok = state.ready();
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not ready', flows: state.flows() });
  });
  app.get('/metrics', async (_req, reply) => reply.header('content-type', metrics.contentType).send(await metrics.metrics()));
  return app;
}
