import { Type } from '@sinclair/typebox';
import { Outcome, type SettledEntry, type Step } from '../../core/component.js';
import type { Message } from '../../core/message.js';
import { parseDuration } from '../../core/units.js';
import { defineStep } from '../../registry/registry.js';
import { DurationType } from '../../registry/types.js';
import { compileExpression, type Expression } from '../expression/compile.js';
import { str } from '../expression/runtime.js';

/** Meta key holding the dedupe key a message passed with (for `settled`). */
const KEY_META = 'dedupeKey';

export const DedupeConfig = Type.Union([
  Type.String({ minLength: 1, description: 'The key expression, e.g. `order_id`; remembered for 24 h.' }),
  Type.Object(
    {
      key: Type.String({ minLength: 1, description: 'An expression giving the key: `order_id`, `$headers["idempotency-key"]`, `concat(a, "/", b)`.' }),
      window: Type.Optional(DurationType({ description: 'How long a delivered key is remembered; 24h by default.' })),
      scope: Type.Optional(Type.String({ minLength: 1, description: 'Name under which keys are kept; steps with the same scope share them. The step name by default.' })),
    },
    { additionalProperties: false },
  ),
]);

/**
 * The `dedupe` step: drops a message whose key was already delivered within the window.
 * Keys live in the store (they survive restarts and are shared by the workers of one
 * store) and are remembered only once the message was accepted by every sink, so a
 * message that fails is never mistaken for a delivered one.
 */
export const dedupeStep = defineStep({
  kind: 'dedupe',
  summary: 'Drops messages whose key was already delivered within a window; keys are kept in the store.',
  description:
    'The key is an expression over the message. A key is remembered (for `window`) only after the message was accepted by every sink, so a failed or dead-lettered message never blocks its retry. A second message with the key of one still in flight in this worker is dropped as well; if that first one is dead-lettered, the dead letter holds it. Messages without a key (null or empty) pass. Dropped duplicates count as filtered.',
  config: DedupeConfig,
  examples: [
    { title: 'By order id, for a day', yaml: 'dedupe: order_id' },
    { title: 'By a header, for an hour', yaml: "dedupe: { key: \"$headers['idempotency-key']\", window: 1h }" },
  ],
  create(config, ctx): Step {
    const spec = typeof config === 'string' ? { key: config } : config;
    const key: Expression = compileExpression(spec.key, { now: () => ctx.clock.now() });
    const windowMs = parseDuration(('window' in spec ? spec.window : undefined) ?? '24h');
    const scope = `dedupe/${spec.scope ?? ctx.name}`;
    /** Keys passed on and not yet settled in this worker. */
    const inFlight = new Set<string>();
    return {
      async process(msg: Message): Promise<Message | null> {
        const raw = key(msg);
        if (raw === null || raw === undefined || raw === '') return msg;
        const k = str(raw);
        if (inFlight.has(k)) return null;
        // Counted in flight before the store answers: a twin arriving meanwhile is dropped.
        inFlight.add(k);
        let seen: boolean;
        try {
          [seen = false] = await ctx.store.seen(scope, [k]);
        } catch (err) {
          inFlight.delete(k);
          throw err;
        }
        if (seen) {
          inFlight.delete(k);
          return null;
        }
        return { ...msg, meta: { ...msg.meta, [KEY_META]: k } };
      },
      async settled(entries: readonly SettledEntry[]): Promise<void> {
        const delivered: string[] = [];
        for (const { msg, outcome } of entries) {
          const k = msg.meta[KEY_META];
          if (typeof k !== 'string') continue;
          if (outcome === Outcome.Delivered) delivered.push(k);
        }
        try {
          if (delivered.length > 0) await ctx.store.remember(scope, delivered, windowMs);
        } finally {
          for (const { msg } of entries) {
            const k = msg.meta[KEY_META];
            if (typeof k === 'string') inFlight.delete(k);
          }
        }
      },
    };
  },
});
