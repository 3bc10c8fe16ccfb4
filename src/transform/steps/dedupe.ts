import { Type } from '@sinclair/typebox';
import { Outcome, type SettledEntry, type Step, type StepContext } from '../../core/component.js';
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
      wait: Type.Optional(
        DurationType({ description: 'How long a message waits for the outcome of one with the same key still in flight in another batch; 30s by default. Past it, the message goes on.' }),
      ),
    },
    { additionalProperties: false },
  ),
]);

/** A message this step passed on with its key, until it settles. */
interface InFlight {
  readonly key: string;
  /** The batch it came in (undefined when the runner does not say). */
  readonly batch: object | undefined;
  /** Resolves with true once it was delivered (and its key remembered), false otherwise. */
  readonly outcome: Promise<boolean>;
  readonly resolve: (delivered: boolean) => void;
  /** Twins from its own batch, dropped on its behalf: forwarded should it not be delivered. */
  readonly held: Message[];
}

/** Meta key of a twin forwarded because the message it was dropped for was not delivered. */
const FORWARDED_META = 'dedupeForwardedFor';

/**
 * The `dedupe` step: drops a message whose key was already delivered within the window.
 * Keys live in the store (they survive restarts and are shared by the workers of one
 * store) and are remembered only once the message was accepted by every sink, so a
 * message that fails is never mistaken for a delivered one.
 *
 * A twin of a message still in flight is never lost: from another batch it waits for that
 * message's outcome (delivered: the twin is dropped; not: the twin goes on), bounded by
 * `wait`; from the same batch (which settles together, so waiting would deadlock) it is
 * dropped and held, and forwarded to the rest of the flow before the batch is acknowledged
 * should the first not be delivered.
 */
export const dedupeStep = defineStep({
  kind: 'dedupe',
  summary: 'Drops messages whose key was already delivered within a window; keys are kept in the store.',
  description:
    'The key is an expression over the message. A key is remembered (for `window`) only after the message was accepted by every sink, so a failed or dead-lettered message never blocks its retry. A message with the key of one still in flight in this worker waits for that one\'s outcome (at most `wait`): delivered, it is dropped; dead-lettered or failed, it goes on. A twin in the same batch is dropped and, should the first not be delivered, forwarded to the steps after this one before the batch is acknowledged. Messages without a key (null or empty) pass. Dropped duplicates count as filtered.',
  config: DedupeConfig,
  examples: [
    { title: 'By order id, for a day', yaml: 'dedupe: order_id' },
    { title: 'By a header, for an hour', yaml: "dedupe: { key: \"$headers['idempotency-key']\", window: 1h }" },
  ],
  create(config, ctx): Step {
    const spec = typeof config === 'string' ? { key: config } : config;
    const key: Expression = compileExpression(spec.key, { now: () => ctx.clock.now() });
    const windowMs = parseDuration(('window' in spec ? spec.window : undefined) ?? '24h');
    const waitMs = parseDuration(('wait' in spec ? spec.wait : undefined) ?? '30s');
    const scope = `dedupe/${spec.scope ?? ctx.name}`;
    // The engine builds steps with a StepContext; forward is how held twins go on.
    const forward = (ctx as Partial<StepContext>).forward;
    /** Keys passed on and not yet settled in this worker. */
    const inFlight = new Map<string, InFlight>();
    /** The entry of each message this step passed on with a key (the same object comes back in `settled`). */
    const owned = new WeakMap<Message, InFlight>();

    /** Waits for `first` to settle, at most `wait`: true when it was delivered. */
    const outcomeOf = async (first: InFlight): Promise<boolean | 'late'> => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), waitMs);
        timer.unref?.();
      });
      try {
        return await Promise.race([first.outcome, late]);
      } finally {
        clearTimeout(timer);
      }
    };

    const pass = async (msg: Message, k: string, batch: object | undefined): Promise<Message | null> => {
      for (;;) {
        const first = inFlight.get(k);
        if (!first) break;
        if (batch === undefined || first.batch === batch || forward === undefined) {
          // The same batch settles together: waiting would deadlock. Dropped now, held for
          // the first's outcome. (Without a way to forward it, it goes on: duplicates are
          // possible, losses are not.)
          if (forward === undefined) return msg;
          first.held.push(msg);
          return null;
        }
        const delivered = await outcomeOf(first);
        if (delivered === true) return null;
        // Not delivered, or not settled in time: go on (check the store and the keys in flight again).
        if (delivered === 'late') return msg;
      }
      let resolve: (delivered: boolean) => void = () => undefined;
      const outcome = new Promise<boolean>((r) => (resolve = r));
      const entry: InFlight = { key: k, batch, outcome, resolve, held: [] };
      // Counted in flight before the store answers: a twin arriving meanwhile waits or is held.
      inFlight.set(k, entry);
      let seen: boolean;
      try {
        [seen = false] = await ctx.store.seen(scope, [k]);
      } catch (err) {
        release(entry, false);
        throw err;
      }
      if (seen) {
        release(entry, true);
        return null;
      }
      const out = { ...msg, meta: { ...msg.meta, [KEY_META]: k } };
      owned.set(out, entry);
      return out;
    };

    const release = (entry: InFlight, delivered: boolean): void => {
      if (inFlight.get(entry.key) === entry) inFlight.delete(entry.key);
      entry.resolve(delivered);
    };

    return {
      async process(msg: Message, stepCtx: StepContext): Promise<Message | null> {
        const raw = key(msg);
        if (raw === null || raw === undefined || raw === '') return msg;
        return pass(msg, str(raw), stepCtx?.batch);
      },
      async settled(entries: readonly SettledEntry[]): Promise<void> {
        const delivered: string[] = [];
        for (const { msg, outcome } of entries) {
          const k = msg.meta[KEY_META];
          if (typeof k === 'string' && outcome === Outcome.Delivered) delivered.push(k);
        }
        let remembered = false;
        try {
          if (delivered.length > 0) await ctx.store.remember(scope, delivered, windowMs);
          remembered = true;
          // Twins held for a first that was dead-lettered or filtered later go on now, before
          // the batch is acknowledged. (A batch failed as a whole comes again, twins with it.)
          const orphans: Message[] = [];
          for (const { msg, outcome } of entries) {
            const entry = owned.get(msg);
            if (!entry || entry.held.length === 0 || outcome === Outcome.Delivered || outcome === undefined) continue;
            for (const twin of entry.held) orphans.push({ ...twin, id: `${twin.id}~dedupe`, meta: { ...twin.meta, [FORWARDED_META]: msg.id } });
          }
          if (orphans.length > 0 && forward) await forward(orphans);
        } finally {
          for (const { msg, outcome } of entries) {
            const entry = owned.get(msg);
            if (entry) release(entry, remembered && outcome === Outcome.Delivered);
          }
        }
      },
    };
  },
});
