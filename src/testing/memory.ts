import { Type } from '@sinclair/typebox';
import type { BatchOutcome, Sink, Source, SourceContext } from '../core/component.js';
import { createMessage, type Message } from '../core/message.js';
import { defineSink, defineSource, defineStep, type Registry } from '../registry/registry.js';

/** Messages a test hands to a `memory` source, by source name (`config.name`). */
const feeds = new Map<string, unknown[]>();
/** What `memory` sinks received, by sink name. */
const received = new Map<string, Message[]>();
/** Outcomes the `memory` source saw, by source name. */
const outcomes = new Map<string, BatchOutcome[]>();

export function feed(name: string, payloads: unknown[]): void {
  feeds.set(name, payloads);
}
export function receivedBy(name: string): Message[] {
  return received.get(name) ?? [];
}
export function outcomesOf(name: string): BatchOutcome[] {
  return outcomes.get(name) ?? [];
}
export function resetMemory(): void {
  feeds.clear();
  received.clear();
  outcomes.clear();
}

/** Behaviour injected into `memory` sinks and `test` steps by name. */
export const hooks = new Map<string, (msg: Message) => unknown>();

/**
 * Test components: a `memory` source emitting the payloads fed under its name (ids `name-1`
 * …), a `memory` sink recording what it accepted (a hook may throw to fail an item), and a
 * `test` step running a hook. Register them on a registry clone in a test.
 */
export function registerMemory(registry: Registry): Registry {
  registry.registerSource(
    defineSource({
      kind: 'memory',
      summary: 'Test source.',
      config: Type.Object({ name: Type.String(), keyField: Type.Optional(Type.String({ description: 'The payload field that gives the message key.' })) }),
      create: (config): Source => ({
        async run(ctx: SourceContext) {
          const payloads = feeds.get(config.name) ?? [];
          const acks: Promise<unknown>[] = [];
          for (let i = 0; i < payloads.length; i += ctx.batchSize) {
            if (ctx.signal.aborted) break;
            const batch = payloads.slice(i, i + ctx.batchSize).map((p, j) => {
              const k = config.keyField !== undefined ? (p as Record<string, unknown>)[config.keyField] : undefined;
              return createMessage({ id: `${config.name}-${i + j + 1}`, payload: p, ...(k !== undefined ? { key: String(k) } : {}) });
            });
            const ack = await ctx.emit(batch);
            acks.push(
              ack.settled.then((o) => {
                const list = outcomes.get(config.name) ?? [];
                list.push(o);
                outcomes.set(config.name, list);
              }),
            );
          }
          await Promise.allSettled(acks);
        },
      }),
    }),
  );
  registry.registerSink(
    defineSink({
      kind: 'memory',
      summary: 'Test sink.',
      config: Type.Object({ name: Type.String() }),
      create: (config): Sink => ({
        async write(batch) {
          const hook = hooks.get(config.name);
          const failed = new Map<number, unknown>();
          let list = received.get(config.name);
          if (!list) {
            list = [];
            received.set(config.name, list);
          }
          for (const [i, m] of batch.entries()) {
            try {
              if (hook) await hook(m);
              list.push(m);
            } catch (err) {
              failed.set(i, err);
            }
          }
          return { failed };
        },
      }),
    }),
  );
  registry.registerStep(
    defineStep({
      kind: 'test',
      summary: 'Test step.',
      config: Type.String(),
      create: (name) => ({
        process: (msg) => {
          const hook = hooks.get(name);
          return hook ? (hook(msg) as Message) : msg;
        },
      }),
    }),
  );
  return registry;
}
