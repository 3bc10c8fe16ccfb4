import { Type, type SchemaOptions, type TInteger, type TString, type TUnion, type TUnsafe } from '@sinclair/typebox';

/** Schema builders for values the spec writes in human units; parse them with core/units. */

export const DurationType = (options: SchemaOptions = {}): TUnion<[TString, TInteger]> =>
  Type.Union([Type.String({ pattern: '^\\s*(\\d+(\\.\\d+)?(ms|sec|min|s|m|h|d))+\\s*$|^\\d+$' }), Type.Integer({ minimum: 0 })], {
    description: 'A duration: 200ms, 5s, 5m, 2h, 1d, or milliseconds as a number.',
    ...options,
  });

export const SizeType = (options: SchemaOptions = {}): TUnion<[TString, TInteger]> =>
  Type.Union([Type.String({ pattern: '^\\s*\\d+(\\.\\d+)?\\s*([kKmMgG]i?[bB]?|[bB])?\\s*$' }), Type.Integer({ minimum: 0 })], {
    description: 'A size: 512KiB, 1MiB, 10MB, or bytes as a number.',
    ...options,
  });

export const RateType = (options: SchemaOptions = {}): TString =>
  Type.String({
    pattern: '^\\s*\\d+(\\.\\d+)?\\s*/\\s*(\\d+(\\.\\d+)?)?\\s*(ms|s|sec|second|m|min|minute|h|hour|d|day)\\s*$',
    description: 'A rate: 100/min, 20/s, 1000/hour.',
    ...options,
  });

/** The schema keyword that marks a credential: the spec must give it as a `${secrets.NAME}` reference. */
export const SECRET_KEYWORD = 'x-ix-secret';

/** A credential (token, password, key, signing secret): only a `${secrets.NAME}` reference is accepted. */
export const SecretType = (options: SchemaOptions = {}): TString =>
  Type.String({ description: 'A secret reference: ${secrets.NAME}.', ...options, [SECRET_KEYWORD]: true });

/**
 * The schema keyword on a header value whose name says it carries a credential: it must hold a
 * `${secrets.NAME}` reference (or a `${…}` taken from the message), never a literal.
 */
export const CREDENTIAL_HEADER_KEYWORD = 'x-ix-credential-header';

/** Header names that carry credentials, matched without regard to case. */
export const CREDENTIAL_HEADER_RE = /^(authorization|proxy-authorization|cookie)$|token|secret|passw|api-?key|signature/i;

const caseless = (re: RegExp): string => re.source.replace(/[a-z]/g, (c) => `[${c}${c.toUpperCase()}]`);

/**
 * Request headers: names to values. A header whose name carries a credential (`Authorization`,
 * `X-Api-Key`, `…-Token`, `Cookie`, …) takes a secret reference: `Bearer ${secrets.TOKEN}`.
 */
export const HeadersType = (options: SchemaOptions = {}): TUnsafe<Record<string, string>> =>
  Type.Unsafe<Record<string, string>>({
    type: 'object',
    patternProperties: { [caseless(CREDENTIAL_HEADER_RE)]: { type: 'string', [CREDENTIAL_HEADER_KEYWORD]: true } },
    additionalProperties: { type: 'string' },
    description: 'Request headers. Credential headers (Authorization, X-Api-Key, …-Token, Cookie) take a secret reference: `Bearer ${secrets.TOKEN}`.',
    ...options,
  });
