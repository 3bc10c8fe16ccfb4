import { createInterface } from 'node:readline';
import { Type } from '@sinclair/typebox';
import type { Sink, SourceContext } from '../../core/component.js';
import { IxError } from '../../core/errors.js';
import { createMessage, type Message } from '../../core/message.js';
import { defineSink, defineSource, type Registry } from '../../registry/registry.js';

const formatField = Type.Union([Type.Literal('jsonl'), Type.Literal('lines')], {
  default: 'jsonl',
  description: 'jsonl: one JSON value per line; lines: each line as a string.',
});

export const stdinSource = defineSource({
  cluster: 'every-worker',
  kind: 'stdin',
  summary: 'Reads records from standard input, one per line.',
  description: 'Standard input cannot be read again, so a record is delivered at most as often as it was read: use a file source where a restart must resume.',
  config: Type.Object({ format: formatField }, { additionalProperties: false }),
  create: (config) => ({
    async run(ctx: SourceContext): Promise<void> {
      const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
      let line = 0;
      let batch: Message[] = [];
      const acks: Promise<unknown>[] = [];
      const flush = async (): Promise<void> => {
        if (batch.length === 0) return;
        const ack = await ctx.emit(batch);
        batch = [];
        acks.push(ack.settled.catch(() => undefined));
      };
      const onAbort = (): void => rl.close();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const text of rl) {
          line++;
          if (text.trim() === '') continue;
          const id = `stdin:${line}`;
          if (config.format === 'lines') batch.push(createMessage({ id, payload: text, meta: { line } }));
          else {
            try {
              batch.push(createMessage({ id, payload: JSON.parse(text), meta: { line } }));
            } catch (err) {
              batch.push(createMessage({ id, payload: text, meta: { line }, error: new IxError('IX_RECORD_INVALID_JSON', { line, detail: (err as Error).message }).message }));
            }
          }
          if (batch.length >= ctx.batchSize) await flush();
        }
        await flush();
        await Promise.all(acks);
      } finally {
        ctx.signal.removeEventListener('abort', onAbort);
      }
    },
  }),
});

/** Writes each payload as one line to standard output, honouring its backpressure. */
export const stdoutSink = defineSink({
  kind: 'stdout',
  summary: 'Writes each payload as one line to standard output.',
  config: Type.Object({ format: formatField }, { additionalProperties: false }),
  create: (config): Sink => ({
    write(batch) {
      let out = '';
      for (const m of batch) {
        out += config.format === 'lines' && typeof m.payload === 'string' ? `${m.payload}\n` : `${JSON.stringify(m.payload)}\n`;
      }
      return new Promise<void>((resolve, reject) => {
        process.stdout.write(out, (err) => (err ? reject(err) : resolve()));
      });
    },
  }),
});

export function register(registry: Registry): void {
  registry.registerSource(stdinSource);
  registry.registerSink(stdoutSink);
}
