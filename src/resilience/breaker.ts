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
  private readonly sampling: SamplingBreaker;

  constructor(options: BreakerOptions, onState?: (state: BreakerState) => void) {
    const breaker = new SamplingBreaker({
      threshold: Math.min(1, Math.max(0.01, options.failureRatio)),
      duration: Math.max(10, options.windowMs),
      // cockatiel counts a minimum rate; minCalls in the window is that rate times the window.
      minimumRps: Math.max(0, options.minCalls) / (Math.max(10, options.windowMs) / 1000),
    });
    this.sampling = breaker;
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
    if (this.policy.state !== CircuitState.Closed) return this.policy.execute(fn, signal);
    return this.closed(fn, signal);
  }

  /**
   * The closed circuit's path, what cockatiel's policy does there without its executor's
   * per-call promises and result objects: a success is sampled directly, a failure goes
   * through the policy, which samples it and opens the circuit if the window says so.
   */
  private async closed<T>(fn: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    let value: T;
    try {
      value = await fn();
    } catch (err) {
      if (!(err instanceof BreakerFailure)) throw err;
      return this.failed(err, signal);
    }
    this.succeeded();
    return value;
  }

  /**
   * Closed: a caller may then run the call itself, without `execute`, and report how it ended
   * with `succeeded()` or `failed()`, which is what `execute` does on the closed path.
   */
  get isClosed(): boolean {
    return this.policy.state === CircuitState.Closed;
  }

  /** A call begun while closed succeeded (or failed in a way that does not count). */
  succeeded(): void {
    this.sampling.success(CircuitState.Closed);
  }

  /** A call begun while closed failed with `err`: sampled (which may open the circuit); rejects with `err`. */
  failed(err: BreakerFailure, signal?: AbortSignal): Promise<never> {
    if (this.policy.state === CircuitState.Closed) return this.policy.execute(() => Promise.reject(err), signal);
    // opened (or isolated) meanwhile by another call: sampled as cockatiel samples a call
    // that began while closed, and the call sees its own failure, not the open circuit
    this.sampling.failure(CircuitState.Closed);
    return Promise.reject(err);
  }
}
