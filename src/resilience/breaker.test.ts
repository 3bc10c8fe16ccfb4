import { describe, expect, it } from 'vitest';
import { BreakerFailure, CircuitBreaker, isBrokenCircuitError, type BreakerState } from './breaker.js';

const fail = (): Promise<never> => Promise.reject(new BreakerFailure('boom'));

describe('CircuitBreaker', () => {
  it('counts closed-circuit successes and failures in one window and opens on the ratio', async () => {
    const states: BreakerState[] = [];
    const breaker = new CircuitBreaker({ failureRatio: 0.5, minCalls: 4, windowMs: 60_000, halfOpenAfterMs: 60_000 }, (s) => states.push(s));
    for (let i = 0; i < 3; i++) expect(await breaker.execute(() => Promise.resolve(i))).toBe(i);
    // 3 successes, then failures: the ratio passes 0.5 at the fourth failure (4 of 7)
    for (let i = 0; i < 3; i++) await expect(breaker.execute(fail)).rejects.toBeInstanceOf(BreakerFailure);
    expect(breaker.state).toBe('closed');
    await expect(breaker.execute(fail)).rejects.toBeInstanceOf(BreakerFailure);
    expect(breaker.state).toBe('open');
    expect(states).toEqual(['open']);
    const rejected = await breaker.execute(() => Promise.resolve(1)).catch((e: unknown) => e);
    expect(isBrokenCircuitError(rejected)).toBe(true);
  });

  it('lets errors other than BreakerFailure through uncounted', async () => {
    const breaker = new CircuitBreaker({ failureRatio: 0.1, minCalls: 1, windowMs: 60_000, halfOpenAfterMs: 60_000 });
    for (let i = 0; i < 5; i++) await expect(breaker.execute(() => Promise.reject(new Error('not counted')))).rejects.toThrow('not counted');
    expect(breaker.state).toBe('closed');
  });

  it('gives a call that began closed its own failure when another call opened the circuit meanwhile', async () => {
    const breaker = new CircuitBreaker({ failureRatio: 0.5, minCalls: 1, windowMs: 60_000, halfOpenAfterMs: 60_000 });
    let failLate: () => void = () => undefined;
    const late = breaker.execute(() => new Promise<never>((_r, reject) => (failLate = () => reject(new BreakerFailure('late')))));
    await expect(breaker.execute(fail)).rejects.toBeInstanceOf(BreakerFailure);
    expect(breaker.state).toBe('open');
    failLate();
    const err = await late.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BreakerFailure);
    expect((err as BreakerFailure).inner).toBe('late');
  });
});

describe('CircuitBreaker, calls run outside execute', () => {
  it('counts succeeded() and failed() as execute counts its calls, and opens on the same ratio', async () => {
    const breaker = new CircuitBreaker({ failureRatio: 0.5, minCalls: 4, windowMs: 60_000, halfOpenAfterMs: 60_000 });
    for (let i = 0; i < 3; i++) {
      expect(breaker.isClosed).toBe(true);
      breaker.succeeded();
    }
    for (let i = 0; i < 3; i++) await expect(breaker.failed(new BreakerFailure(i))).rejects.toBeInstanceOf(BreakerFailure);
    expect(breaker.isClosed).toBe(true);
    await expect(breaker.failed(new BreakerFailure(3))).rejects.toBeInstanceOf(BreakerFailure);
    expect(breaker.isClosed).toBe(false);
    expect(breaker.state).toBe('open');
  });

  it('rejects a failure reported after another call opened the circuit with that failure, not the open circuit', async () => {
    const breaker = new CircuitBreaker({ failureRatio: 0.5, minCalls: 1, windowMs: 60_000, halfOpenAfterMs: 60_000 });
    await expect(breaker.failed(new BreakerFailure('first'))).rejects.toBeInstanceOf(BreakerFailure);
    expect(breaker.state).toBe('open');
    const late = new BreakerFailure('late');
    await expect(breaker.failed(late)).rejects.toBe(late);
  });
});
