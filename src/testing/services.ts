import { inject } from 'vitest';

/** Local services the integration suites use, probed once by the global setup. */
export type ServiceName = 'postgres' | 'mariadb' | 'redis' | 'rabbitmq' | 'mqtt' | 'nats';

declare module 'vitest' {
  export interface ProvidedContext {
    services: Record<string, boolean>;
  }
}

/** Whether a service answered on its port. Under CI=true the global setup fails instead of skipping. */
export function serviceAvailable(name: ServiceName): boolean {
  return inject('services')[name] === true;
}
