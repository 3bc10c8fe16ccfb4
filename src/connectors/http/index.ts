import type { Registry } from '../../registry/registry.js';
import { httpSink, httpSource, httpStep } from './components.js';
import { graphqlSink, graphqlSource, graphqlStep } from './graphql-components.js';
import { servicesSection } from './section.js';

export { RestService, Endpoint, type CallInput, type CallResult, type ServiceDeps } from './client.js';
export { GraphqlService, type GraphqlRequest, type GraphqlResult } from './graphql-client.js';
export { bindServiceMetrics, breakerStates, setServiceMetrics, serviceMetrics, type ServiceMetrics } from './metrics.js';
export { importOpenApi } from './openapi-import.js';
export { paginate, nextLink } from './pagination.js';

/** Registers the `services:` section and the http and graphql sources, steps and sinks. */
export function register(registry: Registry): void {
  registry.registerSection(servicesSection);
  registry.registerSource(httpSource);
  registry.registerStep(httpStep);
  registry.registerSink(httpSink);
  registry.registerSource(graphqlSource);
  registry.registerStep(graphqlStep);
  registry.registerSink(graphqlSink);
}
