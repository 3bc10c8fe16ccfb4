import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { bindServiceMetrics, setServiceMetrics } from './metrics.js';

afterEach(() => setServiceMetrics(undefined));

describe('service metrics', () => {
  it('reports every call counted since the last read, per status, and each duration', async () => {
    const registry = new Registry();
    const m = bindServiceMetrics(registry);
    for (let i = 0; i < 3; i++) m.call('shop', 'orders', '200', 0.002);
    m.call('shop', 'orders', '503', 0.02);
    let text = await registry.metrics();
    expect(text).toContain('ix_service_calls_total{service="shop",endpoint="orders",status="200"} 3');
    expect(text).toContain('ix_service_calls_total{service="shop",endpoint="orders",status="503"} 1');
    expect(text).toContain('ix_service_call_duration_seconds_count{service="shop",endpoint="orders"} 4');
    m.call('shop', 'orders', '200', 0.002);
    m.call('shop', 'orders', '200', 0.002);
    text = await registry.metrics();
    expect(text).toContain('ix_service_calls_total{service="shop",endpoint="orders",status="200"} 5');
    const json = await registry.getSingleMetric('ix_service_calls_total')?.get();
    expect(json?.values.find((v) => v.labels['status'] === '503')?.value).toBe(1);
  });
});
