import { Type, type Static } from '@sinclair/typebox';

/** How a row treats a missing source field (no `default`): write null, leave the field out, or fail. */
export const MissingType = Type.Union([Type.Literal('null'), Type.Literal('skip'), Type.Literal('error')], {
  description: 'A missing source field (no default): null writes null, skip leaves the field out, error dead-letters the record.',
});

export const FieldType = Type.Union(
  [Type.Literal('string'), Type.Literal('number'), Type.Literal('integer'), Type.Literal('boolean'), Type.Literal('date'), Type.Literal('any')],
  { description: 'Convert the value: string, number, integer, boolean, date (to ISO 8601 UTC), or any (as is).' },
);

const Expression = (description: string) => Type.String({ minLength: 1, maxLength: 4096, description });

const LookupFile = Type.Object(
  {
    file: Type.String({ description: 'A .csv or .json file, relative to the spec.' }),
    key: Type.Optional(Type.String({ description: 'CSV column (or JSON property of each row) holding the key; the first column by default.' })),
    value: Type.Optional(Type.String({ description: 'CSV column (or property) holding the value; the second column by default.' })),
  },
  { additionalProperties: false },
);

export const LookupType = Type.Union([LookupFile, Type.Record(Type.String(), Type.Unknown())], {
  description: 'A lookup table: inline `{ key: value }`, or `{ file, key, value }` (CSV or JSON).',
});

/**
 * One row of a field table. An inline `each` holds rows of its own: the schema leaves them
 * open (no recursive $ref in the spec schema) and the mapping compiler checks them.
 */
export const FieldRow = Type.Object(
    {
      from: Type.Optional(Type.String({ description: 'Source path: `customer.address.city`, `items[0].sku`, `$` for the whole record.' })),
      to: Type.String({ description: 'Target path; dots nest (`customer.city`). Empty with `flatten` to flatten into the top level.' }),
      transform: Type.Optional(
        Type.Union([Expression('An expression'), Type.Array(Expression('An expression'), { maxItems: 32 })], {
          description: 'An expression over `$` (the source value), or functions applied to it in turn (`trim | upper`); without `from`, a calculated field over the record.',
        }),
      ),
      type: Type.Optional(FieldType),
      format: Type.Optional(Type.String({ description: 'Date format of the source (type: date), e.g. DD/MM/YYYY HH:mm.' })),
      timezone: Type.Optional(Type.String({ description: 'Time zone of a date without an offset (type: date); UTC by default.' })),
      lookup: Type.Optional(Type.String({ description: 'Replace the value by its entry in this lookup table (null when absent).' })),
      default: Type.Optional(Type.Unknown({ description: 'Written when the source is missing or the result is null.' })),
      when: Type.Optional(Expression('Write this field only when the expression (over the record) is true.')),
      missing: Type.Optional(MissingType),
      sensitive: Type.Optional(Type.Boolean({ description: 'Mask the value in error messages.' })),
      flatten: Type.Optional(Type.String({ maxLength: 8, description: 'Flatten the source object into `to` + separator + key paths (separator given here, e.g. "_").' })),
      each: Type.Optional(
        Type.Union([Type.String(), Type.Object({ fields: Type.Array(Type.Unknown()) }, { additionalProperties: true })], {
          description: 'Map each element of the source array: a mapping name, or an inline mapping `{ fields, unmapped, … }`.',
        }),
      ),
    },
    { additionalProperties: false },
);
export type FieldRow = Static<typeof FieldRow>;

export const MappingConfig = Type.Object(
  {
    description: Type.Optional(Type.String()),
    fields: Type.Array(FieldRow, { description: 'The field table, applied in order.' }),
    unmapped: Type.Optional(
      Type.Union([Type.Literal('keep'), Type.Literal('drop')], {
        description: 'Source fields no row reads: keep copies them as they are; drop (the default) leaves them out.',
      }),
    ),
    drop: Type.Optional(Type.Array(Type.String(), { description: 'With unmapped: keep, top-level fields to leave out anyway.' })),
    missing: Type.Optional(MissingType),
    lookups: Type.Optional(Type.Record(Type.String(), LookupType, { description: 'Lookup tables by name, for `lookup:` and lookup().' })),
  },
  { additionalProperties: false },
);
export type MappingConfig = Static<typeof MappingConfig>;
