import { Type } from '@sinclair/typebox';
import { permanent } from '../../core/errors.js';
import { deriveMessage, type Message } from '../../core/message.js';
import { defineStep } from '../../registry/registry.js';
import { compileExpression } from '../expression/compile.js';
import { describe } from '../expression/runtime.js';

/** The most children one message may split into. */
export const MAX_SPLIT = 100_000;

export const splitStep = defineStep({
  kind: 'split',
  summary: 'Splits an array in the payload into one message per element; the source is acknowledged once every child settled.',
  description:
    'Children get ids `<parent id>/<index>` (stable across redelivery), the parent headers and meta, and `meta.split = { index, count }`. An empty array ends the message as filtered.',
  config: Type.Union([
    Type.String({ minLength: 1, description: 'An expression giving the array, e.g. `items`.' }),
    Type.Object(
      {
        items: Type.String({ minLength: 1, description: 'An expression giving the array.' }),
        parent: Type.Optional(Type.String({ minLength: 1, description: 'Each child payload becomes `{ item, <parent>: parent payload without the array }`.' })),
      },
      { additionalProperties: false },
    ),
  ]),
  examples: [
    { title: 'One message per order line', yaml: 'split: items' },
    { title: 'With the order beside each line', yaml: 'split: { items: items, parent: order }' },
  ],
  create(config) {
    const spec = typeof config === 'string' ? { items: config } : config;
    const items = compileExpression(spec.items);
    const field = /^[A-Za-z_][A-Za-z0-9_]*$/.test(spec.items) ? spec.items : undefined;
    return {
      process(msg: Message): Message[] {
        const arr = items(msg);
        if (arr === null || arr === undefined) return [];
        if (!Array.isArray(arr)) throw permanent(`split: ${spec.items} is ${describe(arr)}, not an array`);
        if (arr.length > MAX_SPLIT) throw permanent(`split: ${spec.items} has ${arr.length} elements; the limit is ${MAX_SPLIT}`);
        let parent: unknown;
        if (spec.parent !== undefined) {
          parent = msg.payload;
          if (field !== undefined && parent !== null && typeof parent === 'object' && !Array.isArray(parent)) {
            const { [field]: _omit, ...rest } = parent as Record<string, unknown>;
            parent = rest;
          }
        }
        return arr.map((item, index) => {
          const payload = spec.parent !== undefined ? { item, [spec.parent]: parent } : item;
          const child = deriveMessage(msg, index, payload);
          child.meta['split'] = { index, count: arr.length };
          return child;
        });
      },
    };
  },
});
