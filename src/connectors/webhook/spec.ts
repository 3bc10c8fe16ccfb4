import { Type, type Static } from '@sinclair/typebox';
import { DurationType, HeadersType, RateType, SecretType, SizeType } from '../../registry/types.js';

/** Config schemas of the `webhook` source and sink: the spec's JSON Schema and docs come from here. */

const Secret = Type.Union([SecretType({ minLength: 1 }), Type.Array(SecretType({ minLength: 1 }), { minItems: 1 })], {
  description: 'A secret reference (${secrets.NAME}), or several during a key rotation: any one matching is enough.',
});

const Cidrs = (description: string) =>
  Type.Array(Type.String({ minLength: 1 }), { description: `${description} IPv4 and IPv6 addresses or CIDRs, e.g. 192.0.2.0/24, 2001:db8::/32.` });

export const VerifySchema = Type.Object(
  {
    scheme: Type.Union(
      [
        Type.Literal('standard-webhooks'),
        Type.Literal('stripe'),
        Type.Literal('github'),
        Type.Literal('slack'),
        Type.Literal('shopify'),
        Type.Literal('hmac'),
        Type.Literal('none'),
      ],
      { description: 'The signature scheme. `none` accepts unsigned requests (use an IP allowlist then).' },
    ),
    secret: Type.Optional(Secret),
    publicKey: Type.Optional(
      Type.Union([Type.String(), Type.Array(Type.String())], { description: 'Standard Webhooks `v1a` (ed25519) public keys: `whpk_…` or PEM.' }),
    ),
    tolerance: Type.Optional(DurationType({ default: '5m', description: 'Accepted clock difference for timestamped schemes (replay protection).' })),
    algorithm: Type.Optional(Type.Union([Type.Literal('sha1'), Type.Literal('sha256'), Type.Literal('sha512')], { description: 'hmac: the digest.' })),
    header: Type.Optional(Type.String({ description: 'hmac: the header carrying the signature.' })),
    encoding: Type.Optional(Type.Union([Type.Literal('hex'), Type.Literal('base64'), Type.Literal('base64url')], { description: 'hmac: how the signature is written.' })),
    prefix: Type.Optional(Type.String({ description: 'hmac: text before the signature, e.g. `sha256=`.' })),
    signed: Type.Optional(Type.String({ description: 'hmac: what is signed, with `{body}`, `{timestamp}`, `{id}`. Default `{body}`.' })),
    timestampHeader: Type.Optional(Type.String({ description: 'hmac: the header carrying the timestamp (seconds).' })),
    idHeader: Type.Optional(Type.String({ description: 'The header carrying the event id (overrides the preset).' })),
  },
  { additionalProperties: false, description: 'How requests are verified. All comparisons are constant-time; the raw bytes are verified.' },
);

export const WebhookSourceSchema = Type.Object(
  {
    path: Type.String({ pattern: '^/', description: 'The route on the public listener, e.g. /webhooks/shop/order.' }),
    method: Type.Optional(Type.Union([Type.Literal('POST'), Type.Literal('PUT')], { default: 'POST' })),
    verify: VerifySchema,
    allow: Type.Optional(Cidrs('Addresses allowed to call (403 otherwise); empty or absent allows all.')),
    trustedProxies: Type.Optional(
      Cidrs('Proxies whose X-Forwarded-For is believed: the client is the right-most address that is not a trusted proxy.'),
    ),
    bodyLimit: Type.Optional(SizeType({ default: '1MiB', description: 'Largest body accepted (413 beyond).' })),
    body: Type.Optional(
      Type.Union([Type.Literal('auto'), Type.Literal('json'), Type.Literal('form'), Type.Literal('raw')], {
        default: 'auto',
        description: '`auto` parses by Content-Type (JSON, form), else keeps the text.',
      }),
    ),
    idHeader: Type.Optional(Type.String({ description: 'Header carrying the event id when the scheme has none; else the body hash is the id.' })),
    dedupeWindow: Type.Optional(DurationType({ default: '7d', description: 'How long a repeated event id is answered 2xx and not processed again.' })),
    maxPending: Type.Optional(
      Type.Integer({ minimum: 1, default: 2000, description: 'Requests waiting to be persisted at once; beyond, 429 with Retry-After.' }),
    ),
    retryAfter: Type.Optional(DurationType({ default: '5s', description: 'Retry-After sent with 429 and 503.' })),
  },
  { additionalProperties: false },
);
export type WebhookSourceConfig = Static<typeof WebhookSourceSchema>;

export const SignSchema = Type.Object(
  {
    scheme: Type.Union(
      [Type.Literal('standard-webhooks'), Type.Literal('stripe'), Type.Literal('github'), Type.Literal('shopify'), Type.Literal('hmac'), Type.Literal('none')],
      { default: 'standard-webhooks' },
    ),
    secret: Type.Optional(SecretType({ minLength: 1, description: 'The signing secret (`whsec_…` for Standard Webhooks): a secret reference, ${secrets.NAME}.' })),
    algorithm: Type.Optional(Type.Union([Type.Literal('sha1'), Type.Literal('sha256'), Type.Literal('sha512')])),
    header: Type.Optional(Type.String()),
    encoding: Type.Optional(Type.Union([Type.Literal('hex'), Type.Literal('base64'), Type.Literal('base64url')])),
    prefix: Type.Optional(Type.String()),
  },
  { additionalProperties: false, description: 'How deliveries are signed. Standard Webhooks by default; `webhook-id` is stable across retries.' },
);

export const WebhookSinkSchema = Type.Object(
  {
    url: Type.String({ pattern: '^https?://', description: 'The endpoint deliveries are POSTed to.' }),
    method: Type.Optional(Type.Union([Type.Literal('POST'), Type.Literal('PUT'), Type.Literal('PATCH')], { default: 'POST' })),
    headers: Type.Optional(HeadersType({ description: 'Extra request headers. Credential headers (Authorization, X-Api-Key, …-Token, Cookie) take a secret reference.' })),
    sign: Type.Optional(SignSchema),
    schedule: Type.Optional(
      Type.Array(DurationType(), {
        minItems: 1,
        default: ['0s', '1m', '5m', '30m', '2h', '24h'],
        description: 'Delay before each attempt, the first included: by default at once, then 1m, 5m, 30m, 2h and 24h after the previous one.',
      }),
    ),
    jitter: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.1, description: 'Each retry delay varies by up to ± this fraction.' })),
    timeout: Type.Optional(DurationType({ default: '15s', description: 'Time allowed for one attempt (connect, send, answer).' })),
    maxRetryAfter: Type.Optional(DurationType({ default: '24h', description: 'Longest Retry-After honoured (429, 502, 503, 504).' })),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, default: 16, description: 'Deliveries in flight at once to this endpoint.' })),
    rateLimit: Type.Optional(RateType({ description: 'At most this many attempts to this endpoint, e.g. 50/s.' })),
    circuitBreaker: Type.Optional(
      Type.Object(
        {
          failures: Type.Integer({ minimum: 1, default: 5, description: 'Consecutive failed attempts that open the circuit.' }),
          halfOpenAfter: DurationType({ default: '30s', description: 'How long the circuit stays open before one trial attempt.' }),
        },
        { additionalProperties: false },
      ),
    ),
    fifo: Type.Optional(
      Type.Boolean({ default: false, description: 'Deliver messages with the same key in order: a later one waits while an earlier one is retried.' }),
    ),
    allowPrivateNetworks: Type.Optional(
      Type.Boolean({ default: false, description: 'Allow loopback, private and link-local addresses (the SSRF guard refuses them by default).' }),
    ),
    allowNetworks: Type.Optional(Cidrs('Networks allowed despite the SSRF guard (cloud metadata endpoints only this way).')),
    responseExcerpt: Type.Optional(SizeType({ default: '1KiB', description: 'How much of each answer is kept with the attempt.' })),
    keepAttempts: Type.Optional(
      DurationType({ default: '30d', description: 'How long the history of delivery attempts (`ix deliveries`) is kept; older ones are purged.' }),
    ),
    dedupeWindow: Type.Optional(
      DurationType({ default: '24h', description: 'A message id accepted within this window is not delivered again when the flow re-sends it.' }),
    ),
  },
  { additionalProperties: false },
);
export type WebhookSinkConfig = Static<typeof WebhookSinkSchema>;
