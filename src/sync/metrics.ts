import { Counter, Gauge, type Registry } from 'prom-client';

/** Prometheus metrics of sync streams, on the admin listener's /metrics. */
export class SyncMetrics {
  readonly records: Counter<'job' | 'stream' | 'outcome'>;
  readonly conflicts: Counter<'job' | 'stream'>;
  readonly lag: Gauge<'job' | 'stream'>;
  readonly checkpointAt = new Map<string, number>();
  readonly runs: Counter<'job' | 'status'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const existing = registry.getSingleMetric('ix_sync_records_total');
    if (existing) registry.removeSingleMetric('ix_sync_records_total');
    for (const n of ['ix_sync_conflicts_total', 'ix_sync_lag_seconds', 'ix_sync_checkpoint_age_seconds', 'ix_sync_runs_total']) {
      if (registry.getSingleMetric(n)) registry.removeSingleMetric(n);
    }
    this.records = new Counter({
      name: 'ix_sync_records_total',
      help: 'Sync records by outcome: read, written, deleted, unchanged (already there or an echo), failed (dead-lettered).',
      labelNames: ['job', 'stream', 'outcome'],
      registers,
    });
    this.conflicts = new Counter({ name: 'ix_sync_conflicts_total', help: 'Rows changed on both sides, resolved by the stream\'s conflict policy.', labelNames: ['job', 'stream'], registers });
    this.lag = new Gauge({ name: 'ix_sync_lag_seconds', help: 'Now minus the newest cursor a stream committed (timestamp cursors).', labelNames: ['job', 'stream'], registers });
    this.runs = new Counter({ name: 'ix_sync_runs_total', help: 'Sync runs by final status.', labelNames: ['job', 'status'], registers });
    const at = this.checkpointAt;
    new Gauge({
      name: 'ix_sync_checkpoint_age_seconds',
      help: 'Seconds since a stream last committed its checkpoint.',
      labelNames: ['job', 'stream'],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const [k, t] of at) {
          const [job = '', stream = ''] = k.split('\0');
          this.set({ job, stream }, (now - t) / 1000);
        }
      },
    });
  }
}
