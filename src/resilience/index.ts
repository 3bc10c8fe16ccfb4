export * from './backoff.js';
export * from './breaker.js';
export * from './bulkhead.js';
export * from './rate-limiter.js';
export * from './timeout.js';
export * from './schedule.js';
