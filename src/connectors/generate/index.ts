import { Type } from '@sinclair/typebox';
import { Checkpointer } from '../../core/checkpointer.js';
import type { Source, SourceContext } from '../../core/component.js';
import { createMessage, type Message } from '../../core/message.js';
import { parseRate } from '../../core/units.js';
import { defineSource, type Registry } from '../../registry/registry.js';
import { RateType } from '../../registry/types.js';

export const generateConfig = Type.Object(
  {
    count: Type.Optional(Type.Integer({ minimum: 0, description: 'How many records; forever when left out.' })),
    rate: Type.Optional(RateType({ description: 'At most this many records per time unit, e.g. 100/s. As fast as the flow takes them when left out.' })),
    payload: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        description: 'Fields every record carries, next to `seq` (1, 2, 3 …) and `at` (ISO time).',
      }),
    ),
    padding: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 << 20, description: 'Adds a `pad` string field of this many characters (record size for benchmarks).' })),
  },
  { additionalProperties: false },
);

/**
 * Synthetic records for demos, tests and benchmarks. Ids are `gen-<seq>`; the sequence is
 * checkpointed after the sinks accepted it, so a restarted flow continues where it was.
 */
export const generateSource = defineSource({
  kind: 'generate',
  summary: 'Emits synthetic records at a rate or up to a count.',
  config: generateConfig,
  examples: [{ title: 'Ten orders a second', yaml: 'count: 100\nrate: 10/s\npayload: { type: order }' }],
  create: (config): Source => ({
    async run(ctx: SourceContext): Promise<void> {
      const saved = await ctx.checkpoint.get();
      let seq = saved ? Number(saved) : 0;
      const total = config.count ?? Infinity;
      const rate = config.rate ? parseRate(config.rate) : undefined;
      const pad = config.padding ? 'x'.repeat(config.padding) : undefined;
      const extra = config.payload ?? {};
      const checkpointer = new Checkpointer<number>(ctx.checkpoint, String);
      const started = ctx.clock.now();
      const startSeq = seq;
      try {
        while (seq < total && !ctx.signal.aborted) {
          let size = Math.min(ctx.batchSize, total - seq);
          if (rate) {
            // Emit in small batches on schedule: the n-th record is due at n * perMs / count.
            size = Math.max(1, Math.min(size, Math.floor(rate.count / Math.max(1, rate.perMs / 100))));
            const due = started + ((seq - startSeq) * rate.perMs) / rate.count;
            const wait = due - ctx.clock.now();
            if (wait > 0) {
              try {
                await ctx.clock.sleep(wait, ctx.signal);
              } catch {
                break;
              }
            }
          }
          const batch: Message[] = new Array<Message>(size);
          const at = new Date(ctx.clock.now()).toISOString();
          for (let i = 0; i < size; i++) {
            seq++;
            const payload: Record<string, unknown> = { seq, at, ...extra };
            if (pad) payload['pad'] = pad;
            batch[i] = createMessage({ id: `gen-${seq}`, payload });
          }
          const ack = await ctx.emit(batch);
          checkpointer.track(seq, ack.settled);
        }
      } finally {
        await checkpointer.flush();
      }
    },
  }),
});

export function register(registry: Registry): void {
  registry.registerSource(generateSource);
}
