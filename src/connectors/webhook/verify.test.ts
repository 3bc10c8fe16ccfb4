import { createHmac, generateKeyPairSync, sign as edSign } from 'node:crypto';
import { sign as octokitSign } from '@octokit/webhooks-methods';
import { Webhook } from 'standardwebhooks';
import Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import { createSigner, createVerifier } from './verify.js';

const now = Date.now();
const body = Buffer.from(JSON.stringify({ id: 'evt_1', type: 'order.created', data: { n: 1 } }));
const tampered = Buffer.from(body.toString().replace('"n":1', '"n":2'));
const whsec = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const otherWhsec = 'whsec_' + Buffer.from('another-secret-of-32-bytes-long!').toString('base64');

describe('Standard Webhooks (signed by the standardwebhooks library)', () => {
  const lib = new Webhook(whsec);
  const sign = (id: string, t: Date, b: Buffer) => ({
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(t.getTime() / 1000)),
    'webhook-signature': lib.sign(id, t, b.toString()),
  });
  const v = createVerifier({ scheme: 'standard-webhooks', secret: whsec });

  it('accepts a genuine signature and reports the event id', () => {
    const r = v.verify(body, sign('msg_1', new Date(now), body), now);
    expect(r).toEqual({ ok: true, id: 'msg_1', timestamp: Math.floor(now / 1000) * 1000 });
  });
  it('refuses a tampered body, a wrong secret, a stale and a future timestamp, missing headers', () => {
    expect(v.verify(tampered, sign('msg_1', new Date(now), body), now).ok).toBe(false);
    const wrong = createVerifier({ scheme: 'standard-webhooks', secret: otherWhsec });
    expect(wrong.verify(body, sign('msg_1', new Date(now), body), now)).toEqual({ ok: false, reason: 'no matching signature' });
    expect(v.verify(body, sign('msg_1', new Date(now - 6 * 60_000), body), now)).toEqual({ ok: false, reason: 'timestamp outside the tolerance' });
    expect(v.verify(body, sign('msg_1', new Date(now + 6 * 60_000), body), now).ok).toBe(false);
    expect(v.verify(body, {}, now).ok).toBe(false);
    // the id is signed: changing it breaks the signature
    const h = sign('msg_1', new Date(now), body);
    expect(v.verify(body, { ...h, 'webhook-id': 'msg_2' }, now).ok).toBe(false);
  });
  it('accepts any of several signatures and any of several secrets (key rotation)', () => {
    const h = sign('msg_1', new Date(now), body);
    const rotated = { ...h, 'webhook-signature': `v1,${Buffer.alloc(32).toString('base64')} ${h['webhook-signature']}` };
    expect(v.verify(body, rotated, now).ok).toBe(true);
    const both = createVerifier({ scheme: 'standard-webhooks', secret: [otherWhsec, whsec] });
    expect(both.verify(body, h, now).ok).toBe(true);
  });
  it('verifies v1a (ed25519) signatures with a whpk_ public key', () => {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
    const ts = String(Math.floor(now / 1000));
    const sig = edSign(null, Buffer.concat([Buffer.from(`msg_9.${ts}.`), body]), privateKey).toString('base64');
    const ed = createVerifier({ scheme: 'standard-webhooks', publicKey: `whpk_${raw.toString('base64')}` });
    const h = { 'webhook-id': 'msg_9', 'webhook-timestamp': ts, 'webhook-signature': `v1a,${sig}` };
    expect(ed.verify(body, h, now).ok).toBe(true);
    expect(ed.verify(tampered, h, now).ok).toBe(false);
  });
  it('our signer is accepted by the standardwebhooks library', () => {
    const headers = createSigner({ scheme: 'standard-webhooks', secret: whsec })('msg_out', body, Date.now());
    expect(lib.verify(body.toString(), headers)).toEqual(JSON.parse(body.toString()));
    expect(() => new Webhook(otherWhsec).verify(body.toString(), headers)).toThrow();
  });
});

describe('Stripe (signed by stripe.webhooks.generateTestHeaderString)', () => {
  const stripe = new Stripe('sk_test_dummy');
  const secret = 'whsec_test_secret';
  const v = createVerifier({ scheme: 'stripe', secret });
  const header = (b: Buffer, t = Math.floor(now / 1000), s = secret) =>
    stripe.webhooks.generateTestHeaderString({ payload: b.toString(), secret: s, timestamp: t });

  it('accepts a genuine signature and takes the event id from the body', () => {
    expect(v.verify(body, { 'stripe-signature': header(body) }, now)).toMatchObject({ ok: true, id: 'evt_1' });
  });
  it('refuses a tampered body, a wrong secret and a stale timestamp', () => {
    expect(v.verify(tampered, { 'stripe-signature': header(body) }, now).ok).toBe(false);
    expect(v.verify(body, { 'stripe-signature': header(body, undefined, 'whsec_wrong') }, now).ok).toBe(false);
    expect(v.verify(body, { 'stripe-signature': header(body, Math.floor(now / 1000) - 301) }, now)).toEqual({
      ok: false,
      reason: 'timestamp outside the tolerance',
    });
  });
  it('our stripe signer is accepted by the stripe library', () => {
    const h = createSigner({ scheme: 'stripe', secret })('x', body, Date.now());
    expect(stripe.webhooks.constructEvent(body, h['stripe-signature'] as string, secret).id).toBe('evt_1');
  });
});

describe('GitHub (signed by @octokit/webhooks-methods)', () => {
  const secret = 'It\'s a Secret to Everybody';
  const v = createVerifier({ scheme: 'github', secret });
  it('accepts a genuine signature and takes the delivery id', async () => {
    const sig = await octokitSign(secret, body.toString());
    expect(v.verify(body, { 'x-hub-signature-256': sig, 'x-github-delivery': 'd-1' }, now)).toEqual({ ok: true, id: 'd-1', timestamp: undefined });
  });
  it('refuses a tampered body, a wrong secret and a malformed header', async () => {
    const sig = await octokitSign(secret, body.toString());
    expect(v.verify(tampered, { 'x-hub-signature-256': sig }, now).ok).toBe(false);
    expect(v.verify(body, { 'x-hub-signature-256': await octokitSign('wrong', body.toString()) }, now).ok).toBe(false);
    expect(v.verify(body, { 'x-hub-signature-256': 'sha256=zz' }, now).ok).toBe(false);
    expect(v.verify(body, { 'x-hub-signature-256': sig.slice(0, -2) }, now).ok).toBe(false);
  });
});

describe('Slack, Shopify and generic HMAC', () => {
  const secret = '8f742231b10e8888abcd99yyyzzz85a5';
  it('Slack v0: signs v0:timestamp:body, refuses stale timestamps', () => {
    const v = createVerifier({ scheme: 'slack', secret });
    const ts = String(Math.floor(now / 1000));
    const sig = 'v0=' + createHmac('sha256', secret).update(`v0:${ts}:${body.toString()}`).digest('hex');
    expect(v.verify(body, { 'x-slack-signature': sig, 'x-slack-request-timestamp': ts }, now).ok).toBe(true);
    expect(v.verify(tampered, { 'x-slack-signature': sig, 'x-slack-request-timestamp': ts }, now).ok).toBe(false);
    expect(v.verify(body, { 'x-slack-signature': sig, 'x-slack-request-timestamp': ts }, now + 10 * 60_000).ok).toBe(false);
  });
  it('Shopify: base64 HMAC of the body', () => {
    const v = createVerifier({ scheme: 'shopify', secret });
    const sig = createHmac('sha256', secret).update(body).digest('base64');
    expect(v.verify(body, { 'x-shopify-hmac-sha256': sig, 'x-shopify-webhook-id': 'w1' }, now)).toMatchObject({ ok: true, id: 'w1' });
    expect(v.verify(tampered, { 'x-shopify-hmac-sha256': sig }, now).ok).toBe(false);
  });
  it('generic HMAC: algorithm, header, encoding, prefix and what is signed', () => {
    const v = createVerifier({
      scheme: 'hmac',
      secret,
      algorithm: 'sha512',
      header: 'X-Sig',
      encoding: 'base64url',
      prefix: 'sha512=',
      signed: '{timestamp}.{body}',
      timestampHeader: 'X-Ts',
      idHeader: 'X-Id',
    });
    const ts = String(Math.floor(now / 1000));
    const sig = 'sha512=' + createHmac('sha512', secret).update(`${ts}.${body.toString()}`).digest('base64url');
    expect(v.verify(body, { 'x-sig': sig, 'x-ts': ts, 'x-id': 'e1' }, now)).toEqual({ ok: true, id: 'e1', timestamp: Number(ts) * 1000 });
    expect(v.verify(body, { 'x-sig': sig, 'x-ts': String(Number(ts) + 1) }, now).ok).toBe(false);
    expect(() => createVerifier({ scheme: 'hmac', secret, header: 'x', signed: '{timestamp}{body}' })).toThrow(/timestampHeader/);
  });
  it('refuses to build a verifier without a secret', () => {
    expect(() => createVerifier({ scheme: 'github' })).toThrow(/needs a secret/);
  });
});
