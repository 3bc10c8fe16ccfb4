import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { ComponentContext, Step, StepContext } from '../../core/component.js';
import type { DurableQueueItem } from '../../core/durable.js';
import { errorMessage, IxError } from '../../core/errors.js';
import { createMessage, type Message } from '../../core/message.js';
import { parseDuration } from '../../core/units.js';
import { defineStep } from '../../registry/registry.js';
import { DurationType } from '../../registry/types.js';
import { compileExpression, type Expression } from '../expression/compile.js';
import { str } from '../expression/runtime.js';

/** The operations of an aggregate field: `name: op(expression)`. */
export const AGGREGATE_OPS = ['count', 'sum', 'avg', 'min', 'max', 'collect', 'first', 'last'] as const;
export type AggregateOp = (typeof AGGREGATE_OPS)[number];

/** Items claimed per store call while closing windows, and the most per pass. */
const CLAIM_LIMIT = 1000;
const MAX_PER_PASS = 200_000;
/** How long one worker holds the right to close windows (renewed every pass). */
const LEASE_MS = 30_000;
/** Lease on claimed window items while their result is forwarded. */
const ITEM_LEASE_MS = 60_000;

export const AggregateConfig = Type.Object(
  {
    by: Type.Optional(Type.String({ minLength: 1, description: 'An expression giving the group key (e.g. `customer_id`); one group for all messages without it.' })),
    window: Type.Union(
      [
        Type.Object({ every: DurationType({ description: 'A tumbling time window: messages are grouped by when they arrive, and each window closes on a timer when it ends.' }) }, { additionalProperties: false }),
        Type.Object(
          {
            count: Type.Integer({ minimum: 1, maximum: 100_000, description: 'A count window: closes when the group holds this many messages.' }),
            within: Type.Optional(DurationType({ description: 'Closes a group that has waited this long with fewer messages (on a timer).' })),
          },
          { additionalProperties: false },
        ),
      ],
      { description: '`{ every: 1m }` or `{ count: 100, within: 5m }`.' },
    ),
    fields: Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String({ minLength: 1 }), {
      description: `The result's fields: \`name: op(expression)\` with op one of ${AGGREGATE_OPS.join(', ')}; \`count()\` counts messages.`,
    }),
  },
  { additionalProperties: false },
);
export type AggregateConfig = Static<typeof AggregateConfig>;

interface Field {
  readonly name: string;
  readonly op: AggregateOp;
  /** undefined for count(). */
  readonly expr: Expression | undefined;
}

/** What the store keeps per absorbed message: group key, window start, field inputs. */
interface Held {
  readonly k: string;
  readonly s: number;
  readonly v: readonly unknown[];
}

const FIELD_RE = /^\s*([a-z]+)\s*\(([\s\S]*)\)\s*$/;

function parseField(name: string, text: string, ctx: ComponentContext): Field {
  const m = FIELD_RE.exec(text);
  const op = m?.[1] as AggregateOp | undefined;
  if (!m || !op || !(AGGREGATE_OPS as readonly string[]).includes(op)) {
    throw new IxError('IX_SPEC_INVALID', { path: `${ctx.name}.fields.${name}`, detail: `is not op(expression) with op one of ${AGGREGATE_OPS.join(', ')}` });
  }
  const inner = (m[2] as string).trim();
  if (inner === '' && op !== 'count') throw new IxError('IX_SPEC_INVALID', { path: `${ctx.name}.fields.${name}`, detail: `${op}() needs an expression` });
  return { name, op, expr: inner === '' ? undefined : compileExpression(inner, { now: () => ctx.clock.now() }) };
}

/** Folds the held inputs of one field into its value. */
export function fold(op: AggregateOp, values: readonly unknown[], countAll: boolean): unknown {
  const present = values.filter((v) => v !== null && v !== undefined);
  switch (op) {
    case 'count':
      return countAll ? values.length : present.length;
    case 'collect':
      return present;
    case 'first':
      return present[0] ?? null;
    case 'last':
      return present[present.length - 1] ?? null;
    default: {
      const nums = present.map(Number).filter((n) => Number.isFinite(n));
      if (op === 'sum') return nums.reduce((a, b) => a + b, 0);
      if (nums.length === 0) return null;
      if (op === 'avg') return nums.reduce((a, b) => a + b, 0) / nums.length;
      let best = nums[0] as number;
      for (const n of nums) if (op === 'min' ? n < best : n > best) best = n;
      return best;
    }
  }
}

/**
 * The `aggregate` step. Each message is absorbed into its group's open window: it is
 * written to a store queue (before its ack, so nothing is lost, and shared by the workers
 * of one store) and ends as filtered. A window closes when it is due (a timer for time
 * windows, arrival or `within` for count windows); one worker at a time (a store lease)
 * claims the due items, computes the result and forwards it, durably, to the rest of the
 * flow; only then are the items removed. Open windows survive a restart.
 */
export const aggregateStep = defineStep({
  kind: 'aggregate',
  summary: 'Aggregates messages by key in count or time windows (count, sum, avg, min, max, collect, first, last); open windows are kept in the store.',
  description:
    'Absorbed messages end as filtered; each closed window becomes one new message `{ key, count, window?, ...fields }` (`key` with `by`; `window` for time windows; id stable across retries) that runs through the rest of the flow. Time windows follow arrival time and close on a timer even when no message arrives; a message arriving for a window already closed makes an extra result for that window. Windows stay open across restarts and are closed by one worker at a time.',
  config: AggregateConfig,
  examples: [
    {
      title: 'Per customer, every minute',
      yaml: 'aggregate:\n  by: customer_id\n  window: { every: 1m }\n  fields: { orders: count(), total: sum(amount), biggest: max(amount), skus: collect(sku) }',
    },
    { title: 'Batches of 100 (or what came within 5 minutes)', yaml: 'aggregate:\n  window: { count: 100, within: 5m }\n  fields: { ids: collect(id) }' },
  ],
  create(config, ctx): Step {
    // The engine builds steps with a StepContext; forward is how closed windows go on.
    const forward = (ctx as Partial<StepContext>).forward;
    if (!forward) throw new IxError('IX_SPEC_INVALID', { path: ctx.name, detail: 'aggregate runs inside an engine flow (it forwards closed windows)' });
    const by = config.by === undefined ? undefined : compileExpression(config.by, { now: () => ctx.clock.now() });
    const fields = Object.entries(config.fields).map(([name, text]) => parseField(name, text, ctx));
    const every = 'every' in config.window ? parseDuration(config.window.every) : undefined;
    if (every !== undefined && every < 1) throw new IxError('IX_SPEC_INVALID', { path: `${ctx.name}.window.every`, detail: 'must be at least 1ms' });
    const count = 'count' in config.window ? config.window.count : undefined;
    const within = 'within' in config.window && config.window.within !== undefined ? parseDuration(config.window.within) : undefined;
    const queue = `aggregate/${ctx.name}`;
    const tick = Math.min(1000, Math.max(20, Math.floor((every ?? within ?? 4000) / 4)));
    const stop = new AbortController();
    let closing: Promise<void> | undefined;
    /** Per group: messages this worker absorbed since it last saw the group fill. */
    const filled = new Map<string, number>();
    let again = false;

    const resultOf = (k: string, group: readonly DurableQueueItem[], start: number | undefined): Message => {
      const ids = group.map((g) => g.message.id).sort();
      const h = createHash('sha1').update(k).update('\0').update(ids.join('\0')).digest('hex').slice(0, 20);
      const payload: Record<string, unknown> = by ? { key: k, count: group.length } : { count: group.length };
      if (start !== undefined && every !== undefined) payload['window'] = { start: new Date(start).toISOString(), end: new Date(start + every).toISOString() };
      fields.forEach((f, i) => {
        payload[f.name] = fold(
          f.op,
          group.map((g) => (g.message.payload as Held).v[i]),
          f.expr === undefined,
        );
      });
      return createMessage({ id: `${ctx.name}/${start ?? 'count'}/${h}`, ...(by ? { key: k } : {}), payload, meta: { aggregate: { count: group.length } } });
    };

    /** Closes what is due: one pass, in one worker at a time (the store lease). */
    const pass = async (): Promise<void> => {
      if (!(await ctx.store.acquireLease(queue, ctx.owner, LEASE_MS))) return;
      const claimed: DurableQueueItem[] = [];
      for (;;) {
        const items = await ctx.store.claim(queue, ctx.owner, { limit: CLAIM_LIMIT, leaseMs: ITEM_LEASE_MS });
        claimed.push(...items);
        if (items.length < CLAIM_LIMIT || claimed.length >= MAX_PER_PASS) break;
      }
      if (claimed.length === 0) return;
      claimed.sort((a, b) => a.enqueuedAt - b.enqueuedAt || (a.message.id < b.message.id ? -1 : 1));
      const groups = new Map<string, DurableQueueItem[]>();
      for (const item of claimed) {
        const held = item.message.payload as Held;
        const g = every !== undefined ? `${held.s}\0${held.k}` : held.k;
        const list = groups.get(g);
        if (list) list.push(item);
        else groups.set(g, [item]);
      }
      const results: Message[] = [];
      const done: string[] = [];
      const keep: string[] = [];
      const now = ctx.clock.now();
      for (const group of groups.values()) {
        const held = (group[0] as DurableQueueItem).message.payload as Held;
        if (every !== undefined) {
          results.push(resultOf(held.k, group, held.s));
          for (const g of group) done.push(g.message.id);
          continue;
        }
        const n = count as number;
        let i = 0;
        for (; i + n <= group.length; i += n) {
          const chunk = group.slice(i, i + n);
          results.push(resultOf(held.k, chunk, undefined));
          for (const g of chunk) done.push(g.message.id);
        }
        const rest = group.slice(i);
        if (rest.length > 0 && within !== undefined && now - (rest[0] as DurableQueueItem).enqueuedAt >= within) {
          results.push(resultOf(held.k, rest, undefined));
          for (const g of rest) done.push(g.message.id);
        } else for (const g of rest) keep.push(g.message.id);
      }
      try {
        if (results.length > 0) await forward(results);
      } catch (err) {
        await ctx.store.release(queue, ctx.owner, claimed.map((c) => c.message.id));
        throw err;
      }
      if (done.length > 0) await ctx.store.complete(queue, ctx.owner, done);
      if (keep.length > 0) await ctx.store.release(queue, ctx.owner, keep);
    };

    /** Runs a pass now, or right after the one running (single-flight). */
    const kick = (): Promise<void> => {
      if (closing) {
        again = true;
        return closing;
      }
      closing = (async () => {
        try {
          do {
            again = false;
            await pass();
          } while (again && !stop.signal.aborted);
        } catch (err) {
          ctx.logger.warn({ step: ctx.name, err: errorMessage(err) }, 'closing aggregate windows failed; retrying on the next tick');
        } finally {
          closing = undefined;
        }
      })();
      return closing;
    };

    // The ticker only sets how often due windows are looked for (window bounds follow
    // ctx.clock). Unref'd: it never keeps a process alive on its own (`ix check` builds
    // steps without running them).
    let timer: NodeJS.Timeout | undefined;
    const schedule = (): void => {
      if (stop.signal.aborted) return;
      timer = setTimeout(() => void kick().finally(schedule), tick);
      timer.unref();
    };
    schedule();

    return {
      async process(msg: Message): Promise<null> {
        const k = by ? by(msg) : '';
        const now = ctx.clock.now();
        const start = every !== undefined ? now - (now % every) : 0;
        const held: Held = { k: k === null || k === undefined ? '' : str(k), s: start, v: fields.map((f) => (f.expr ? f.expr(msg) : null)) };
        await ctx.store.enqueue(queue, [{ message: { id: msg.id, payload: held, headers: {}, meta: {} }, availableAt: every !== undefined ? start + every : now }], {
          dedupeTtlMs: Math.max(86_400_000, (every ?? within ?? 0) * 2),
        });
        if (count !== undefined) {
          // A hint (lost on restart, where the ticker takes over): when this worker has seen a
          // group fill up, close it before acknowledging the message that filled it, so the
          // result is in the inbox before a finite source (a file) reports its end.
          const seen = (filled.get(held.k) ?? 0) + 1;
          if (seen >= count) {
            filled.delete(held.k);
            await kick();
          } else filled.set(held.k, seen);
        }
        return null;
      },
      async close(): Promise<void> {
        stop.abort();
        clearTimeout(timer);
        await closing;
        await ctx.store.releaseLease(queue, ctx.owner).catch(() => undefined);
      },
    };
  },
});
