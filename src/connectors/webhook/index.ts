import { defineSink, defineSource, type Registry } from '../../registry/registry.js';
import { resolveSinkSettings, WebhookSink } from './sink.js';
import { resolveSourceSettings, WebhookSource } from './source.js';
import { WebhookSinkSchema, WebhookSourceSchema } from './spec.js';

export { WebhookSink, resolveSinkSettings } from './sink.js';
export { WebhookSource, resolveSourceSettings } from './source.js';
export { createSigner, createVerifier } from './verify.js';
export { SsrfGuard } from './ssrf.js';

export const webhookSource = defineSource({
  cluster: 'every-worker',
  kind: 'webhook',
  summary: 'Receives webhooks: verifies the signature and the sender, persists, then answers 2xx.',
  description: [
    'Registers a route on the public listener. Each request is checked (size, IP allowlist, signature with a',
    'constant-time comparison of the raw bytes, timestamp tolerance), parsed, and committed to the flow’s durable',
    'inbox before the answer. A repeated event id is answered 2xx and not processed again. Answers: 401 bad or',
    'missing signature, 403 address not allowed, 400 malformed, 413 too large, 429 with Retry-After when intake is',
    'saturated, 503 while shutting down. See docs/webhooks.md.',
  ].join(' '),
  config: WebhookSourceSchema,
  examples: [
    {
      title: 'Standard Webhooks',
      yaml: 'path: /webhooks/shop/order\nverify: { scheme: standard-webhooks, secret: ${secrets.HOOK_SECRET} }',
    },
    {
      title: 'Stripe behind a proxy, from Stripe’s addresses only',
      yaml: 'path: /webhooks/stripe\nverify: { scheme: stripe, secret: ${secrets.STRIPE_WHSEC} }\nallow: [3.18.12.63/32, 3.130.192.231/32]\ntrustedProxies: [10.0.0.0/8]',
    },
  ],
  create: (config) => new WebhookSource(resolveSourceSettings(config)),
});

export const webhookSink = defineSink({
  kind: 'webhook',
  summary: 'Delivers messages as signed webhooks, durably, on a retry schedule.',
  description: [
    'A write is a durable enqueue into the sink’s outbox; a delivery worker signs (Standard Webhooks by default,',
    '`webhook-id` stable across retries) and POSTs each message. Retries follow the schedule (at once, 1m, 5m, 30m,',
    '2h, 24h, with jitter), honour Retry-After on 429/502/503/504, and end in the DLQ (replayable). 410 disables the',
    'endpoint until `ix endpoints enable`. A circuit breaker and a rate limit per endpoint; optional FIFO per key; an SSRF guard refuses private',
    'addresses unless allowed. Every attempt is kept for `ix deliveries`. See docs/webhooks.md.',
  ].join(' '),
  config: WebhookSinkSchema,
  examples: [
    {
      title: 'Signed delivery with the default schedule',
      yaml: 'url: https://hooks.example.com/orders\nsign: { scheme: standard-webhooks, secret: ${secrets.OUT_SECRET} }',
    },
  ],
  create: (config, ctx) => new WebhookSink(resolveSinkSettings(config), ctx),
});

/** Registers the `webhook` source and sink. */
export function register(registry: Registry): void {
  registry.registerSource(webhookSource);
  registry.registerSink(webhookSink);
}
