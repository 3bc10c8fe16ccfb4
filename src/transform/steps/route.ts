import { Type, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Sink, SinkContext, SinkWriteResult, Step, StepResult } from '../../core/component.js';
import { IxError, permanent } from '../../core/errors.js';
import type { Message } from '../../core/message.js';
import type { Registry, SinkDef, StepDef } from '../../registry/registry.js';
import { defineSink } from '../../registry/registry.js';
import { compileExpression, type Expression } from '../expression/compile.js';

const Component = (what: string) =>
  Type.Record(Type.String(), Type.Unknown(), { minProperties: 1, maxProperties: 1, description: `${what}: exactly one kind, as in a flow.` });

const Branch = Type.Object(
  {
    name: Type.Optional(Type.String({ description: 'A name for logs and dead-letter reasons.' })),
    when: Type.String({ minLength: 1, description: 'An expression over the message (payload fields, $headers, $meta).' }),
    steps: Type.Optional(Type.Array(Component('A step'), { description: 'Steps run on this branch only.' })),
    sink: Component('The branch sink'),
  },
  { additionalProperties: false },
);

export const RouteConfig = Type.Object(
  {
    mode: Type.Optional(Type.Union([Type.Literal('first'), Type.Literal('all')], { description: 'first: the first branch that matches (default); all: every branch that matches.' })),
    routes: Type.Array(Branch, { minItems: 1 }),
    otherwise: Type.Optional(
      Type.Object(
        { name: Type.Optional(Type.String()), steps: Type.Optional(Type.Array(Component('A step'))), sink: Component('The sink') },
        { additionalProperties: false, description: 'Where messages that match no branch go. Without it they are dead-lettered (add a filter step before to drop them on purpose).' },
      ),
    ),
  },
  { additionalProperties: false },
);

interface BuiltBranch {
  readonly name: string;
  readonly when: Expression | undefined;
  readonly steps: { step: Step; ctx: SinkContext }[];
  readonly sink: Sink;
  readonly ctx: SinkContext;
}

function configOf(def: { config: TSchema }, raw: unknown, where: string): unknown {
  const value = Value.Default(def.config, structuredClone(raw));
  if (!Value.Check(def.config, value)) {
    const e = [...Value.Errors(def.config, value)][0];
    throw new IxError('IX_SPEC_INVALID', { path: `${where}${e?.path ? e.path.replace(/\//g, '.') : ''}`, detail: e?.message ?? 'is invalid' });
  }
  return value;
}

async function buildComponent<T>(registry: Registry, slot: 'step' | 'sink', spec: Record<string, unknown>, ctx: SinkContext): Promise<T> {
  const [kind, raw] = Object.entries(spec)[0] as [string, unknown];
  const def = (slot === 'step' ? registry.steps.get(kind) : registry.sinks.get(kind)) as StepDef | SinkDef | undefined;
  if (!def) {
    const known = [...(slot === 'step' ? registry.steps.keys() : registry.sinks.keys())].sort().join(', ');
    throw new IxError('IX_SPEC_UNKNOWN_COMPONENT', { slot, kind, hint: ` in ${ctx.name} (known: ${known})` });
  }
  return (await def.create(configOf(def, raw, `${ctx.name}.${kind}`) as never, ctx)) as T;
}

function isPromise<T>(v: unknown): v is Promise<T> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

/** Runs a branch's steps on one message; a step may filter (none), pass one, or split (several). */
async function runSteps(steps: BuiltBranch['steps'], msg: Message): Promise<Message[]> {
  let current: Message[] = [msg];
  for (const { step, ctx } of steps) {
    const next: Message[] = [];
    for (const m of current) {
      let r: StepResult | Promise<StepResult> = step.process(m, ctx);
      if (isPromise<StepResult>(r)) r = await r;
      if (r === null || r === undefined) continue;
      if (Array.isArray(r)) next.push(...r);
      else next.push(r);
    }
    current = next;
  }
  return current;
}

/**
 * The `route` sink: content- and header-based routing. Each message goes to the first
 * branch whose `when` holds (or to every such branch with `mode: all`), else to
 * `otherwise`; each branch runs its own steps and writes to its own sink. The message is
 * accepted once every branch it went to accepted it; a branch failure fails just that
 * message (retried by the flow's policy, then dead-lettered with the branch named).
 */
export function routeSink(registry: Registry): SinkDef<typeof RouteConfig> {
  return defineSink({
    kind: 'route',
    summary: 'Routes each message to the first (or every) branch whose condition holds; each branch has its own steps and sink.',
    description:
      'Conditions are expressions over the payload fields, `$headers` and `$meta` (docs/expressions.md). A message that matches no branch goes to `otherwise`, or is dead-lettered when there is none. A message counts as delivered once every branch it went to accepted it; a branch whose steps filter it out counts as accepted.',
    config: RouteConfig,
    examples: [
      {
        title: 'By region, everything else to a file',
        yaml: "routes:\n  - { when: \"region = 'eu'\", sink: { file: { path: ./out/eu.jsonl } } }\n  - { when: \"region = 'us'\", steps: [ { map: us-order } ], sink: { file: { path: ./out/us.jsonl } } }\notherwise: { sink: { file: { path: ./out/other.jsonl } } }",
      },
    ],
    async create(config, ctx) {
      const mode = config.mode ?? 'first';
      const signal = (ctx as Partial<SinkContext>).signal ?? new AbortController().signal;
      const build = async (b: { name?: string; when?: string; steps?: Record<string, unknown>[]; sink: Record<string, unknown> }, label: string): Promise<BuiltBranch> => {
        const bctx = (suffix: string): SinkContext => ({ ...ctx, signal, name: `${ctx.name}.${label}${suffix}` });
        const steps: BuiltBranch['steps'] = [];
        for (const [i, s] of (b.steps ?? []).entries()) {
          const sctx = bctx(`.steps[${i}]`);
          steps.push({ step: await buildComponent<Step>(registry, 'step', s, sctx), ctx: sctx });
        }
        const sinkCtx = bctx('.sink');
        return {
          name: b.name ?? label,
          when: b.when === undefined ? undefined : compileExpression(b.when, { now: () => ctx.clock.now() }),
          steps,
          sink: await buildComponent<Sink>(registry, 'sink', b.sink, sinkCtx),
          ctx: sinkCtx,
        };
      };
      const branches: BuiltBranch[] = [];
      for (const [i, b] of config.routes.entries()) branches.push(await build(b, `routes[${i}]`));
      const otherwise = config.otherwise ? await build(config.otherwise, 'otherwise') : undefined;
      return new RouteSink(branches, otherwise, mode);
    },
  });
}

class RouteSink implements Sink {
  constructor(
    private readonly branches: readonly BuiltBranch[],
    private readonly otherwise: BuiltBranch | undefined,
    private readonly mode: 'first' | 'all',
  ) {}

  async write(batch: Message[]): Promise<SinkWriteResult> {
    const failed = new Map<number, unknown>();
    const perBranch = new Map<BuiltBranch, number[]>();
    const add = (b: BuiltBranch, i: number): void => {
      const list = perBranch.get(b);
      if (list) list.push(i);
      else perBranch.set(b, [i]);
    };
    for (const [i, msg] of batch.entries()) {
      let matched = false;
      try {
        for (const b of this.branches) {
          if ((b.when as Expression)(msg)) {
            add(b, i);
            matched = true;
            if (this.mode === 'first') break;
          }
        }
      } catch (err) {
        failed.set(i, err);
        continue;
      }
      if (!matched) {
        if (this.otherwise) add(this.otherwise, i);
        else failed.set(i, permanent('route: no branch matched and there is no otherwise'));
      }
    }
    await Promise.all([...perBranch].map(([b, idx]) => this.deliver(b, idx, batch, failed)));
    return { failed };
  }

  private async deliver(b: BuiltBranch, idx: number[], batch: Message[], failed: Map<number, unknown>): Promise<void> {
    const out: Message[] = [];
    const origin: number[] = [];
    for (const i of idx) {
      try {
        const produced = b.steps.length === 0 ? [batch[i] as Message] : await runSteps(b.steps, batch[i] as Message);
        for (const m of produced) {
          out.push(m);
          origin.push(i);
        }
      } catch (err) {
        failed.set(i, wrap(b, err));
      }
    }
    if (out.length === 0) return;
    try {
      const res = await b.sink.write(out, b.ctx);
      if (res) for (const [k, err] of res.failed) failed.set(origin[k] as number, wrap(b, err));
    } catch (err) {
      for (const i of new Set(origin)) failed.set(i, wrap(b, err));
    }
  }

  async close(): Promise<void> {
    for (const b of this.otherwise ? [...this.branches, this.otherwise] : this.branches) {
      for (const s of b.steps) await s.step.close?.();
      await b.sink.close?.();
    }
  }
}

function wrap(b: BuiltBranch, err: unknown): unknown {
  if (err instanceof IxError) return new IxError(err.code, { ...err.params, detail: `branch ${b.name}: ${String(err.params['detail'] ?? err.message)}` }, { cause: err, retryable: err.retryable });
  if (err instanceof Error) return Object.assign(new Error(`branch ${b.name}: ${err.message}`, { cause: err }), 'retryable' in err ? { retryable: (err as { retryable: unknown }).retryable } : {});
  return err;
}
