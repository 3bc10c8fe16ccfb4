import { Type, type Static } from '@sinclair/typebox';
import { DurationType, HeadersType, RateType, SecretType } from '../../registry/types.js';

/** Config schemas of the `services:` section and the http components. */

export const RetrySchema = Type.Object(
  {
    attempts: Type.Integer({ minimum: 1, default: 3, description: 'Tries in all, the first included.' }),
    backoff: Type.Union([Type.Literal('exponential'), Type.Literal('fixed')], { default: 'exponential' }),
    initial: DurationType({ default: '200ms' }),
    max: DurationType({ default: '30s' }),
    jitter: Type.Boolean({ default: true, description: 'Full jitter: wait a uniform random time up to the backoff ceiling.' }),
  },
  { additionalProperties: false, description: 'Retries of one call, before its error reaches the flow.' },
);

export const BreakerSchema = Type.Object(
  {
    failureRatio: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.5 })),
    minCalls: Type.Optional(Type.Integer({ minimum: 1, default: 20, description: 'Calls in the window before the ratio counts.' })),
    window: Type.Optional(DurationType({ default: '30s' })),
    halfOpenAfter: Type.Optional(DurationType({ default: '10s', description: 'How long the breaker stays open before one probe.' })),
  },
  { additionalProperties: false },
);

const RateLimitObject = Type.Object(
  {
    limit: RateType(),
    key: Type.Optional(Type.String({ description: 'Template naming the bucket, e.g. ${payload.tenant}: one limit per key.' })),
    burst: Type.Optional(Type.Integer({ minimum: 1, description: 'Calls that may go at once after a quiet spell (default 1: evenly spaced).' })),
  },
  { additionalProperties: false },
);

export const RateLimitSchema = Type.Union([RateType(), RateLimitObject, Type.Array(Type.Union([RateType(), RateLimitObject]))], {
  description: 'N/sec|min|hour, or { limit, key, burst }, or a list of them (all must allow the call).',
});

export const ErrorAction = Type.Union(
  [Type.Literal('retry'), Type.Literal('dead-letter'), Type.Literal('fail'), Type.Literal('refresh-auth'), Type.Literal('disable')],
  { description: 'retry: try again with backoff; dead-letter: stop this message; fail: hand the error to the flow policy; refresh-auth: renew credentials once and retry; disable: stop calling this endpoint (410).' },
);

export const ErrorRuleSchema = Type.Object(
  {
    action: ErrorAction,
    attempts: Type.Optional(Type.Integer({ minimum: 1, description: 'Tries in all for this error (retry).' })),
    respectRetryAfter: Type.Optional(Type.Boolean({ description: 'Wait as long as Retry-After says (default true).' })),
    maxWait: Type.Optional(DurationType({ description: 'Longest Retry-After honoured (default 5m).' })),
  },
  { additionalProperties: false },
);

/** Keys: a status (`503`), a class (`5xx`), or `network`, `timeout`, `invalid-response`. */
export const ErrorsSchema = Type.Record(Type.String({ pattern: '^([1-5][0-9x]{2}|network|timeout|invalid-response|graphql)$' }), ErrorRuleSchema, {
  description: 'What to do per status (503), status class (5xx) or failure (network, timeout, invalid-response, graphql).',
});

/** A credential: the spec must give it as ${secrets.NAME} (`ix check` refuses a literal). */
const Secretish = SecretType();

export const AuthSchema = Type.Union([
  Type.Object(
    { type: Type.Literal('api-key'), key: Secretish, in: Type.Optional(Type.Union([Type.Literal('header'), Type.Literal('query')], { default: 'header' })), name: Type.Optional(Type.String({ default: 'X-API-Key' })) },
    { additionalProperties: false },
  ),
  Type.Object({ type: Type.Literal('basic'), username: Type.String(), password: Secretish }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('bearer'), token: Secretish }, { additionalProperties: false }),
  Type.Object(
    {
      type: Type.Literal('oauth2'),
      grant: Type.Optional(Type.Union([Type.Literal('client-credentials'), Type.Literal('refresh-token')], { default: 'client-credentials' })),
      tokenUrl: Type.String(),
      clientId: Type.String(),
      clientSecret: Type.Optional(Secretish),
      refreshToken: Type.Optional(Secretish),
      scope: Type.Optional(Type.String()),
      audience: Type.Optional(Type.String()),
      clientAuth: Type.Optional(Type.Union([Type.Literal('basic'), Type.Literal('body')], { default: 'basic', description: 'How the client authenticates to the token endpoint.' })),
      refreshBefore: Type.Optional(DurationType({ default: '30s', description: 'Renew this long before the token expires.' })),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal('jwt'),
      algorithm: Type.Union([Type.Literal('HS256'), Type.Literal('RS256'), Type.Literal('ES256')]),
      key: Secretish,
      issuer: Type.Optional(Type.String()),
      subject: Type.Optional(Type.String()),
      audience: Type.Optional(Type.String()),
      keyId: Type.Optional(Type.String()),
      ttl: Type.Optional(DurationType({ default: '5m' })),
      claims: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
      header: Type.Optional(Type.String({ default: 'Authorization' })),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal('hmac'),
      secret: Secretish,
      algorithm: Type.Optional(Type.Union([Type.Literal('sha256'), Type.Literal('sha512'), Type.Literal('sha1')], { default: 'sha256' })),
      header: Type.Optional(Type.String({ default: 'X-Signature' })),
      timestampHeader: Type.Optional(Type.String({ default: 'X-Timestamp' })),
      encoding: Type.Optional(Type.Union([Type.Literal('hex'), Type.Literal('base64')], { default: 'hex' })),
      prefix: Type.Optional(Type.String({ default: '', description: 'Put before the signature, e.g. "sha256=".' })),
      payload: Type.Optional(Type.String({
        default: '{timestamp}.{method}.{path}.{body}',
        description: 'What is signed: {timestamp}, {method}, {path} (with query), {body}.',
      })),
    },
    { additionalProperties: false },
  ),
  Type.Object({ type: Type.Literal('none') }, { additionalProperties: false }),
]);

export const TlsSchema = Type.Object(
  {
    cert: Type.Optional(Type.String({ description: 'Client certificate (PEM text or a file path) for mTLS.' })),
    key: Type.Optional(SecretType({ description: 'Client key (PEM): a secret reference, e.g. one declared as file:./client.key.' })),
    ca: Type.Optional(Type.String({ description: 'CA certificate(s) (PEM text or a file path) to trust.' })),
    passphrase: Type.Optional(SecretType({ description: 'Passphrase of the client key: a secret reference.' })),
    rejectUnauthorized: Type.Optional(Type.Boolean({ default: true })),
    servername: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const PaginateSchema = Type.Union([
  Type.Object(
    {
      type: Type.Literal('cursor'),
      param: Type.Optional(Type.String({ default: 'cursor', description: 'Query parameter that carries the cursor.' })),
      next: Type.String({ description: 'Where the next cursor is in the body, e.g. $.next_cursor.' }),
      items: Type.Optional(Type.String()),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal('offset'),
      offsetParam: Type.Optional(Type.String({ default: 'offset' })),
      limitParam: Type.Optional(Type.String({ default: 'limit' })),
      limit: Type.Optional(Type.Integer({ minimum: 1, default: 100 })),
      items: Type.Optional(Type.String()),
      total: Type.Optional(Type.String({ description: 'Where the total count is, if the API says.' })),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal('page'),
      param: Type.Optional(Type.String({ default: 'page' })),
      start: Type.Optional(Type.Integer({ default: 1 })),
      sizeParam: Type.Optional(Type.String()),
      size: Type.Optional(Type.Integer({ minimum: 1 })),
      items: Type.Optional(Type.String()),
      totalPages: Type.Optional(Type.String()),
    },
    { additionalProperties: false },
  ),
  Type.Object({ type: Type.Literal('link'), items: Type.Optional(Type.String()) }, { additionalProperties: false }),
]);

const MethodSchema = Type.Union(
  ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'].map((m) => Type.Literal(m)),
  { default: 'GET' },
);

export const EndpointSchema = Type.Object(
  {
    method: MethodSchema,
    path: Type.String({ default: '', description: 'Path below baseUrl; {name} from params, ${expr} from the message.' }),
    description: Type.Optional(Type.String()),
    query: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    headers: Type.Optional(HeadersType()),
    body: Type.Optional(Type.Unknown({ description: 'Body template (JSON); strings may hold ${expr}.' })),
    params: Type.Optional(Type.Record(Type.String(), Type.Unknown({ description: 'Declared path parameters (documentation).' }))),
    timeout: Type.Optional(DurationType()),
    rateLimit: Type.Optional(RateLimitSchema),
    retry: Type.Optional(RetrySchema),
    circuitBreaker: Type.Optional(Type.Union([BreakerSchema, Type.Literal(false)])),
    errors: Type.Optional(ErrorsSchema),
    paginate: Type.Optional(PaginateSchema),
    items: Type.Optional(Type.String({ description: 'Where the list of items is in the body (sources), e.g. $.data.' })),
    conditional: Type.Optional(Type.Boolean({ description: 'Send If-None-Match with the last ETag (GET).' })),
    request: Type.Optional(Type.Object({ schema: Type.Optional(Type.Unknown()) }, { additionalProperties: true, description: 'The request body schema (documentation).' })),
    response: Type.Optional(
      Type.Object(
        {
          schema: Type.Optional(Type.Unknown({ description: 'The 2xx response body\'s JSON Schema (2020-12).' })),
          validate: Type.Optional(
            Type.Boolean({
              default: false,
              description: 'Check each 2xx body against `schema`: a body that does not match is an `invalid-response` failure (dead-lettered by default, with the violations).',
            }),
          ),
        },
        { additionalProperties: true, description: 'The 2xx response: its schema (documentation, or checked with validate: true).' },
      ),
    ),
    document: Type.Optional(Type.String({ description: 'GraphQL services: the operation (query, mutation or subscription).' })),
    variables: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'GraphQL services: variables template.' })),
  },
  { additionalProperties: false },
);

export const ServiceSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('rest'), Type.Literal('graphql')], { default: 'rest' }),
    description: Type.Optional(Type.String()),
    baseUrl: Type.String({ description: 'http(s)://host[:port][/prefix]; for graphql, the endpoint URL.' }),
    wsUrl: Type.Optional(Type.String({ description: 'graphql-ws URL for subscriptions (default: baseUrl with ws:).' })),
    headers: Type.Optional(HeadersType()),
    timeout: DurationType({ default: '30s', description: 'Whole call, per attempt.' }),
    connectTimeout: DurationType({ default: '10s' }),
    auth: Type.Optional(AuthSchema),
    tls: Type.Optional(TlsSchema),
    rateLimit: Type.Optional(RateLimitSchema),
    retry: Type.Optional(RetrySchema),
    circuitBreaker: Type.Optional(Type.Union([BreakerSchema, Type.Literal(false)])),
    maxConcurrent: Type.Integer({ minimum: 1, default: 64, description: 'Bulkhead: calls in flight at once; more wait.' }),
    connections: Type.Integer({ minimum: 1, default: 64, description: 'Keep-alive connections per origin.' }),
    errors: Type.Optional(ErrorsSchema),
    endpoints: Type.Record(Type.String(), EndpointSchema, { default: {} }),
  },
  { additionalProperties: false },
);

export type ServiceConfig = Static<typeof ServiceSchema>;
export type EndpointConfig = Static<typeof EndpointSchema>;
export type AuthConfig = Static<typeof AuthSchema>;
export type RetryConfig = Static<typeof RetrySchema>;
export type BreakerConfig = Static<typeof BreakerSchema>;
export type ErrorRule = Static<typeof ErrorRuleSchema>;
export type PaginateConfig = Static<typeof PaginateSchema>;
export type RateLimitConfig = Static<typeof RateLimitSchema>;
export type TlsConfig = Static<typeof TlsSchema>;
