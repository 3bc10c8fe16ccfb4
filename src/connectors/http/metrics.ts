import type { Registry as PromRegistry } from 'prom-client';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { BreakerState } from '../../resilience/breaker.js';

/**
 * What service calls report. A module-level sink the engine wires to its Prometheus registry
 * with `bindServiceMetrics(registry)`; until then calls are recorded only in memory
 * (`breakerStates()`), which tests and the admin API can read.
 */
export interface ServiceMetrics {
  call(service: string, endpoint: string, status: string, seconds: number): void;
  retry(service: string, endpoint: string, reason: string): void;
  breakerState(service: string, endpoint: string, state: BreakerState): void;
  rateWait(service: string, endpoint: string, ms: number): void;
}

const STATE_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2, isolated: 3 };

const states = new Map<string, BreakerState>();
let sink: ServiceMetrics | undefined;

/** Current breaker state per `service.endpoint` (every breaker ever built in this process). */
export function breakerStates(): ReadonlyMap<string, BreakerState> {
  return states;
}

export const serviceMetrics: ServiceMetrics = {
  call: (s, e, status, seconds) => sink?.call(s, e, status, seconds),
  retry: (s, e, reason) => sink?.retry(s, e, reason),
  breakerState: (s, e, state) => {
    states.set(`${s}.${e}`, state);
    sink?.breakerState(s, e, state);
  },
  rateWait: (s, e, ms) => sink?.rateWait(s, e, ms),
};

/** Routes service metrics to another sink (undefined: memory only). */
export function setServiceMetrics(next: ServiceMetrics | undefined): void {
  sink = next;
}

/**
 * Registers the service metrics on a prom-client Registry and routes calls to them:
 * `ix_service_calls_total{service,endpoint,status}`, `ix_service_call_duration_seconds`,
 * `ix_service_retries_total{service,endpoint,reason}`,
 * `ix_service_circuit_state{service,endpoint}` (0 closed, 1 half-open, 2 open, 3 isolated),
 * `ix_service_rate_limit_wait_seconds_total{service,endpoint}`.
 */
export function bindServiceMetrics(registry: PromRegistry): ServiceMetrics {
  // calls are counted in memory and added to the counter when it is read (prom-client hashes
  // and validates the label set on every increment, even of a labelled child)
  const children: { calls: Counter.Internal; pending: number; duration: ReturnType<Histogram['labels']> }[] = [];
  // by service, endpoint and status: nested maps of names the calls pass in, with no key string built per call
  const byLabels = new Map<string, Map<string, Map<string, (typeof children)[number]>>>();
  const calls = new Counter({
    name: 'ix_service_calls_total',
    help: 'Service calls by final status',
    labelNames: ['service', 'endpoint', 'status'],
    registers: [registry],
    collect() {
      for (const c of children) {
        if (c.pending === 0) continue;
        c.calls.inc(c.pending);
        c.pending = 0;
      }
    },
  });
  const duration = new Histogram({
    name: 'ix_service_call_duration_seconds',
    help: 'Service call duration, retries included',
    labelNames: ['service', 'endpoint'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const retries = new Counter({ name: 'ix_service_retries_total', help: 'Service call retries by reason', labelNames: ['service', 'endpoint', 'reason'], registers: [registry] });
  const circuit = new Gauge({
    name: 'ix_service_circuit_state',
    help: 'Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open, 3 isolated',
    labelNames: ['service', 'endpoint'],
    registers: [registry],
  });
  const waited = new Counter({ name: 'ix_service_rate_limit_wait_seconds_total', help: 'Time calls waited for a rate limit', labelNames: ['service', 'endpoint'], registers: [registry] });
  for (const [key, state] of states) {
    const dot = key.indexOf('.');
    circuit.set({ service: key.slice(0, dot), endpoint: key.slice(dot + 1) }, STATE_VALUE[state]);
  }
  // the labelled children, looked up once per service, endpoint and status
  const m: ServiceMetrics = {
    call: (service, endpoint, status, seconds) => {
      let endpoints = byLabels.get(service);
      if (!endpoints) byLabels.set(service, (endpoints = new Map()));
      let statuses = endpoints.get(endpoint);
      if (!statuses) endpoints.set(endpoint, (statuses = new Map()));
      let c = statuses.get(status);
      if (!c) {
        c = { calls: calls.labels({ service, endpoint, status }), pending: 0, duration: duration.labels({ service, endpoint }) };
        statuses.set(status, c);
        children.push(c);
      }
      c.pending++;
      c.duration.observe(seconds);
    },
    retry: (service, endpoint, reason) => retries.inc({ service, endpoint, reason }),
    breakerState: (service, endpoint, state) => circuit.set({ service, endpoint }, STATE_VALUE[state]),
    rateWait: (service, endpoint, ms) => waited.inc({ service, endpoint }, ms / 1000),
  };
  setServiceMetrics(m);
  return m;
}
