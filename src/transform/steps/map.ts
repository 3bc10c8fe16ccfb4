import { Type } from '@sinclair/typebox';
import type { Message } from '../../core/message.js';
import { defineSection, defineStep } from '../../registry/registry.js';
import { buildMapping, MappingConfig, type CompiledMapping } from '../mapping/index.js';

export const MAPPINGS_SECTION = 'mappings';

/** `mappings:` named field tables, compiled once and shared by every `map` step that names them. */
export const mappingsSection = defineSection({
  key: MAPPINGS_SECTION,
  summary: 'Named mappings: field tables compiled once into fast functions.',
  description:
    'Each entry is a field table (`from`, `to`, `transform`, `type`, `default`, `when`, `lookup`, `each`, `flatten`, `missing`, `sensitive`) with optional `lookups` and `unmapped: keep | drop`. See docs/transform.md.',
  entry: MappingConfig,
  build(name, config, ctx) {
    return buildMapping(name, config, {
      baseDir: ctx.baseDir,
      now: () => ctx.clock.now(),
      resolve: (other) => ctx.resources.get<CompiledMapping>(MAPPINGS_SECTION, other),
    });
  },
});

/** Applies a mapping to the payload; headers, meta, key and id stay as they are. */
export function mapMessage(mapping: CompiledMapping, msg: Message): Message {
  return { ...msg, payload: mapping(msg.payload, msg) };
}

export const mapStep = defineStep({
  kind: 'map',
  summary: 'Maps the payload through a mapping: a name from `mappings:`, or an inline field table.',
  description:
    'A conversion failure, or a missing field whose row says `missing: error`, dead-letters the message at once with the field path and the reason (the value masked for `sensitive` fields).',
  config: Type.Union([Type.String({ description: 'The name of a mapping under mappings:' }), MappingConfig]),
  examples: [
    { title: 'A named mapping', yaml: 'map: order' },
    { title: 'An inline field table', yaml: 'map:\n  fields:\n    - { from: full_name, to: name, transform: trim }\n    - { from: total, to: amount_cents, type: integer, transform: "round($ * 100)" }' },
  ],
  create(config, ctx) {
    const mapping =
      typeof config === 'string'
        ? ctx.resources.get<CompiledMapping>(MAPPINGS_SECTION, config)
        : buildMapping(`${ctx.name} (inline)`, config, {
            baseDir: ctx.baseDir,
            now: () => ctx.clock.now(),
            resolve: (other) => ctx.resources.get<CompiledMapping>(MAPPINGS_SECTION, other),
          });
    mapping.link();
    return { process: (msg: Message) => mapMessage(mapping, msg) };
  },
});
