import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsImport from 'ajv-formats';
import { IxError, permanent } from '../../core/errors.js';
import type { Message } from '../../core/message.js';
import { defineStep } from '../../registry/registry.js';

const addFormats = addFormatsImport as unknown as (ajv: Ajv2020) => void;

/** The most violations listed in one dead-letter reason. */
const MAX_LISTED = 20;

/** One line per violation: the JSON pointer of the offending value, then what is wrong. */
export function describeViolations(errors: readonly ErrorObject[]): string[] {
  return errors.map((e) => {
    let pointer = e.instancePath;
    if (e.keyword === 'required') pointer += `/${escape(String((e.params as { missingProperty: string }).missingProperty))}`;
    if (e.keyword === 'additionalProperties') pointer += `/${escape(String((e.params as { additionalProperty: string }).additionalProperty))}`;
    const msg = e.keyword === 'required' ? 'is required' : e.keyword === 'additionalProperties' ? 'is not allowed' : (e.message ?? 'is invalid');
    return `${pointer || '/'} ${msg}`;
  });
}

function escape(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Compiles a JSON Schema (2020-12, with formats) once. */
export function compileSchema(schema: unknown, where: string): ValidateFunction {
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: true });
  addFormats(ajv);
  try {
    return ajv.compile(schema as object);
  } catch (err) {
    throw new IxError('IX_SPEC_INVALID', { path: where, detail: `is not a valid JSON Schema: ${(err as Error).message}` });
  }
}

export const validateStep = defineStep({
  kind: 'validate',
  summary: 'Checks the payload against a JSON Schema (2020-12); a failure dead-letters the message listing each violation by JSON pointer.',
  config: Type.Union([
    Type.String({ description: 'A schema file (JSON), relative to the spec.' }),
    Type.Object(
      {
        schema: Type.Union([Type.String({ description: 'A schema file, relative to the spec.' }), Type.Record(Type.String(), Type.Unknown(), { description: 'An inline schema.' })]),
      },
      { additionalProperties: false },
    ),
  ]),
  examples: [
    { title: 'A schema file', yaml: 'validate: ./schemas/order.json' },
    { title: 'Inline', yaml: 'validate:\n  schema: { type: object, required: [id], properties: { id: { type: string } } }' },
  ],
  create(config, ctx) {
    const ref = typeof config === 'string' ? config : config.schema;
    let schema: unknown = ref;
    if (typeof ref === 'string') {
      try {
        schema = JSON.parse(readFileSync(resolve(ctx.baseDir, ref), 'utf8'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new IxError('IX_SPEC_FILE_NOT_FOUND', { path: ref });
        throw new IxError('IX_SPEC_INVALID', { path: ref, detail: `is not JSON: ${(err as Error).message}` });
      }
    }
    const validate = compileSchema(schema, typeof ref === 'string' ? ref : `${ctx.name} schema`);
    return {
      process(msg: Message) {
        if (validate(msg.payload)) return msg;
        const lines = describeViolations(validate.errors ?? []);
        const more = lines.length > MAX_LISTED ? `; and ${lines.length - MAX_LISTED} more` : '';
        throw permanent(`schema validation failed: ${lines.slice(0, MAX_LISTED).join('; ')}${more}`);
      },
    };
  },
});
