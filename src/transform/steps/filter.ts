import { Type } from '@sinclair/typebox';
import type { Message } from '../../core/message.js';
import { defineStep } from '../../registry/registry.js';
import { compileExpression } from '../expression/compile.js';

export const filterStep = defineStep({
  kind: 'filter',
  summary: 'Keeps the messages for which an expression is true; the others end as filtered (counted).',
  description: 'The expression sees the payload as `$` and its fields by name, and `$headers`, `$meta`, `$key`, `$id`. See docs/expressions.md.',
  config: Type.Union([
    Type.String({ minLength: 1, description: 'The expression.' }),
    Type.Object({ when: Type.String({ minLength: 1, description: 'The expression.' }) }, { additionalProperties: false }),
  ]),
  examples: [
    { title: 'Paid orders only', yaml: "filter: \"status = 'paid' and total > 0\"" },
    { title: 'By header', yaml: "filter: { when: \"$headers['x-tenant'] = 'acme'\" }" },
  ],
  create(config, ctx) {
    const expr = compileExpression(typeof config === 'string' ? config : config.when, { now: () => ctx.clock.now() });
    return { process: (msg: Message) => (expr(msg) ? msg : null) };
  },
});
