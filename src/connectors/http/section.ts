import { defineSection } from '../../registry/registry.js';
import { RestService } from './client.js';
import { ServiceSchema, type ServiceConfig } from './config.js';
import { GraphqlService } from './graphql-client.js';

/**
 * The `services:` section: each entry becomes a RestService or GraphqlService, built once per
 * engine; components find it with `ctx.resources.get('services', name)`.
 */
export const servicesSection = defineSection({
  key: 'services',
  summary: 'External REST and GraphQL services: base URL, auth, timeouts, rate limits, retries, circuit breaker, errors table, endpoints.',
  description:
    'Every call a flow makes to a service goes through the policies declared here. See docs/services.md for the errors table, auth schemes and pagination.',
  entry: ServiceSchema,
  build(name, config, ctx) {
    const deps = { clock: ctx.clock, logger: ctx.logger.child({ service: name }), baseDir: ctx.baseDir, ...(ctx.rates ? { rateGate: ctx.rates } : {}) };
    const cfg = config as ServiceConfig;
    return cfg.type === 'graphql' ? new GraphqlService(name, cfg, deps) : new RestService(name, cfg, deps);
  },
  close(resource) {
    return (resource as RestService).close();
  },
});
