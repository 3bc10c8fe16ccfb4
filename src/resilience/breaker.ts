import {
  BrokenCircuitError,
  CircuitState,
  circuitBreaker,
  handleWhen,
  isBrokenCircuitError,
  SamplingBreaker,
  type CircuitBreakerPolicy,
} from 'cockatiel';

/**
 * A circuit breaker over a sliding window (cockatiel's SamplingBreaker): it opens when the
 * failure ratio over `windowMs` reaches `failureRatio` with at least `minCalls` calls in the
 * window, rejects calls while open, and after `halfOpenAfterMs` lets one probe through
 * (half-open): a success closes it, a failure opens it again.
 *
 * cockatiel reads `Date.now()` and uses real timers, so the breaker runs on wall time (its
 * tests use short real windows), not on the injected Clock.
 */
export interface BreakerOptions {
  /** 0..1 */
  readonly failureRatio: number;
  readonly minCalls: number;
  readonly windowMs: number;
  readonly halfOpenAfterMs: number;
}

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

/** Thrown by a call to mark it as a breaker failure (5xx, network, timeout); anything else passes through uncounted. */
export class BreakerFailure extends Error {
  constructor(readonly inner: unknown) {
    super('breaker failure');
  }
}

export { isBrokenCircuitError, BrokenCircuitError };

const STATE_NAMES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
};

export class CircuitBreaker {
  private readonly policy: CircuitBreakerPolicy;

  constructor(options: BreakerOptions, onState?: (state: BreakerState) => void) {
    const breaker = new SamplingBreaker({
      threshold: Math.min(1, Math.max(0.01, options.failureRatio)),
      duration: Math.max(10, options.windowMs),
      // cockatiel counts a minimum rate; minCalls in the window is that rate times the window.
      minimumRps: Math.max(0, options.minCalls) / (Math.max(10, options.windowMs) / 1000),
    });
    this.policy = circuitBreaker(
      handleWhen((err) => err instanceof BreakerFailure),
      { halfOpenAfter: Math.max(1, options.halfOpenAfterMs), breaker },
    );
    if (onState) this.policy.onStateChange((s) => onState(STATE_NAMES[s]));
  }

  get state(): BreakerState {
    return STATE_NAMES[this.policy.state];
  }

  /** Runs `fn`; throws BrokenCircuitError while open. A `BreakerFailure` thrown by `fn` counts as a failure. */
  execute<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.policy.execute(fn, signal);
  }
}
