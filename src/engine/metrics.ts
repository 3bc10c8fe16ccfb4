import { Counter, Gauge, Registry } from 'prom-client';

/** Per-flow counters: every source message ends delivered, dead-lettered or filtered. */
export class EngineMetrics {
  readonly registry: Registry;
  readonly messagesIn: Counter<'flow'>;
  readonly messagesOut: Counter<'flow'>;
  readonly messagesFailed: Counter<'flow'>;
  readonly messagesDeadLettered: Counter<'flow'>;
  readonly messagesFiltered: Counter<'flow'>;
  readonly sinkWritten: Counter<'flow' | 'sink'>;
  readonly inFlight: Gauge<'flow'>;

  constructor(registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    this.messagesIn = new Counter({ name: 'ix_flow_messages_in_total', help: 'Messages a flow took from its source.', labelNames: ['flow'], registers });
    this.messagesOut = new Counter({ name: 'ix_flow_messages_out_total', help: 'Source messages delivered: every sink accepted what they became.', labelNames: ['flow'], registers });
    this.messagesFailed = new Counter({ name: 'ix_flow_messages_failed_total', help: 'Failed attempts at a step or sink (each retried or dead-lettered).', labelNames: ['flow'], registers });
    this.messagesDeadLettered = new Counter({ name: 'ix_flow_messages_dead_lettered_total', help: 'Source messages dead-lettered with a reason.', labelNames: ['flow'], registers });
    this.messagesFiltered = new Counter({ name: 'ix_flow_messages_filtered_total', help: 'Source messages deliberately filtered.', labelNames: ['flow'], registers });
    this.sinkWritten = new Counter({ name: 'ix_sink_messages_written_total', help: 'Messages a sink accepted.', labelNames: ['flow', 'sink'], registers });
    this.inFlight = new Gauge({ name: 'ix_flow_batches_in_flight', help: 'Batches a flow is processing.', labelNames: ['flow'], registers });
  }
}
