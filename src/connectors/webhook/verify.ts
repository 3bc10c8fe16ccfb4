import { createHmac, createPublicKey, createSecretKey, timingSafeEqual, verify as edVerify, type KeyObject } from 'node:crypto';

/**
 * Signature verification for inbound webhooks. Every comparison of a signature is
 * constant-time (`crypto.timingSafeEqual` on equal-length buffers); the raw bytes as received
 * are what is verified. Secrets never appear in a result or an error.
 */

export type Headers = Readonly<Record<string, string | string[] | undefined>>;

export type VerifyResult =
  | { readonly ok: true; readonly id: string | undefined; readonly timestamp: number | undefined }
  | { readonly ok: false; readonly reason: string };

export interface Verifier {
  readonly scheme: string;
  /** `now` in ms since the epoch (the injected clock). */
  verify(rawBody: Buffer, headers: Headers, now: number): VerifyResult;
}

export type HmacAlgorithm = 'sha1' | 'sha256' | 'sha512';
export type SignatureEncoding = 'hex' | 'base64' | 'base64url';

export interface VerifyConfig {
  readonly scheme: 'standard-webhooks' | 'stripe' | 'github' | 'slack' | 'shopify' | 'hmac' | 'none';
  /** One secret, or several during a key rotation (any one matching is enough). */
  readonly secret?: string | readonly string[];
  /** Standard Webhooks `v1a` (ed25519) public keys: `whpk_<base64>` or a PEM. */
  readonly publicKey?: string | readonly string[];
  /** Accepted clock difference for timestamped schemes, in ms. @defaultValue 5 min */
  readonly toleranceMs?: number;
  // ---- generic hmac ----
  readonly algorithm?: HmacAlgorithm;
  readonly header?: string;
  readonly encoding?: SignatureEncoding;
  /** Text in front of the signature in its header, e.g. `sha256=`. */
  readonly prefix?: string;
  /** What is signed: `{body}`, `{timestamp}`, `{id}` placeholders. @defaultValue `{body}` */
  readonly signed?: string;
  readonly timestampHeader?: string;
  readonly idHeader?: string;
}

export const DEFAULT_TOLERANCE_MS = 5 * 60_000;

/** A header's single value (the first when repeated), by lower-case name. */
export function header(headers: Headers, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  if (Array.isArray(v)) return v[0];
  return v;
}

/** Constant-time equality of two byte strings; false (without comparing) on a length mismatch. */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length || a.length === 0) return false;
  return timingSafeEqual(a, b);
}

function secrets(config: VerifyConfig): string[] {
  const s = config.secret;
  const list = s === undefined ? [] : typeof s === 'string' ? [s] : [...s];
  return list.filter((x) => x.length > 0);
}

function decode(sig: string, encoding: SignatureEncoding): Buffer | undefined {
  const text = sig.trim();
  if (encoding === 'hex') return /^[0-9a-fA-F]+$/.test(text) && text.length % 2 === 0 ? Buffer.from(text, 'hex') : undefined;
  if (encoding === 'base64') return /^[A-Za-z0-9+/]+={0,2}$/.test(text) ? Buffer.from(text, 'base64') : undefined;
  return /^[A-Za-z0-9_-]+={0,2}$/.test(text) ? Buffer.from(text, 'base64url') : undefined;
}

function hmac(algorithm: HmacAlgorithm, key: Buffer | string | KeyObject, ...parts: (string | Buffer)[]): Buffer {
  const h = createHmac(algorithm, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Checks a timestamp in seconds against `now` (ms). */
function checkTimestamp(raw: string | undefined, now: number, toleranceMs: number): { ok: true; seconds: number } | { ok: false; reason: string } {
  if (raw === undefined || raw === '') return { ok: false, reason: 'missing timestamp' };
  if (!/^\d{1,12}$/.test(raw.trim())) return { ok: false, reason: 'malformed timestamp' };
  const seconds = Number(raw.trim());
  if (Math.abs(now - seconds * 1000) > toleranceMs) return { ok: false, reason: 'timestamp outside the tolerance' };
  return { ok: true, seconds };
}

/** Standard Webhooks secret bytes: `whsec_<base64>`, else the text's bytes. */
export function standardWebhooksKey(secret: string): Buffer {
  const text = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
  // Never quote the secret: say what is wrong with it.
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) throw new TypeError('a Standard Webhooks secret is whsec_ followed by base64 (this one is not)');
  return Buffer.from(text, 'base64');
}

function ed25519Key(text: string): KeyObject {
  try {
    if (text.startsWith('whpk_')) {
      const raw = Buffer.from(text.slice('whpk_'.length), 'base64');
      if (raw.length !== 32) throw new TypeError('not 32 bytes');
      // SubjectPublicKeyInfo prefix for a raw 32-byte ed25519 key.
      const der = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]);
      return createPublicKey({ key: der, format: 'der', type: 'spki' });
    }
    const key = createPublicKey(text);
    if (key.asymmetricKeyType !== 'ed25519') throw new TypeError('not ed25519');
    return key;
  } catch {
    throw new TypeError('publicKey must be an ed25519 public key: whpk_ followed by the base64 of its 32 bytes, or a PEM');
  }
}

function standardWebhooks(config: VerifyConfig): Verifier {
  // imported once as key objects: no key copy into OpenSSL on every request
  const keys = secrets(config).map((s) => createSecretKey(standardWebhooksKey(s)));
  const pks = (config.publicKey === undefined ? [] : typeof config.publicKey === 'string' ? [config.publicKey] : [...config.publicKey]).map(ed25519Key);
  if (keys.length === 0 && pks.length === 0) throw new TypeError('standard-webhooks verification needs a secret or a publicKey');
  const tolerance = config.toleranceMs ?? DEFAULT_TOLERANCE_MS;
  return {
    scheme: 'standard-webhooks',
    verify(body, headers, now) {
      const id = header(headers, 'webhook-id');
      const ts = header(headers, 'webhook-timestamp');
      const sigHeader = header(headers, 'webhook-signature');
      if (!id || !sigHeader) return { ok: false, reason: 'missing webhook-id or webhook-signature' };
      const t = checkTimestamp(ts, now, tolerance);
      if (!t.ok) return t;
      const prefix = `${id}.${ts}.`;
      const macs = keys.map((k) => hmac('sha256', k, prefix, body));
      // the signed bytes as one buffer only for ed25519 (v1a); HMAC streams the two parts
      const signed = pks.length > 0 ? Buffer.concat([Buffer.from(prefix), body]) : body;
      for (const part of sigHeader.split(' ')) {
        const comma = part.indexOf(',');
        if (comma < 0) continue;
        const version = part.slice(0, comma);
        const sig = decode(part.slice(comma + 1), 'base64');
        if (!sig) continue;
        if (version === 'v1') {
          for (const mac of macs) if (safeEqual(sig, mac)) return { ok: true, id, timestamp: t.seconds * 1000 };
        } else if (version === 'v1a') {
          for (const pk of pks) {
            if (sig.length === 64 && edVerify(null, signed, pk, sig)) return { ok: true, id, timestamp: t.seconds * 1000 };
          }
        }
      }
      return { ok: false, reason: 'no matching signature' };
    },
  };
}

function stripe(config: VerifyConfig): Verifier {
  const keys = secrets(config);
  if (keys.length === 0) throw new TypeError('stripe verification needs a secret');
  const tolerance = config.toleranceMs ?? DEFAULT_TOLERANCE_MS;
  return {
    scheme: 'stripe',
    verify(body, headers, now) {
      const h = header(headers, 'stripe-signature');
      if (!h) return { ok: false, reason: 'missing Stripe-Signature' };
      let ts: string | undefined;
      const v1: Buffer[] = [];
      for (const item of h.split(',')) {
        const eq = item.indexOf('=');
        if (eq < 0) continue;
        const k = item.slice(0, eq).trim();
        const v = item.slice(eq + 1).trim();
        if (k === 't') ts = v;
        else if (k === 'v1') {
          const d = decode(v, 'hex');
          if (d) v1.push(d);
        }
      }
      const t = checkTimestamp(ts, now, tolerance);
      if (!t.ok) return t;
      if (v1.length === 0) return { ok: false, reason: 'no v1 signature' };
      for (const key of keys) {
        const mac = hmac('sha256', key, `${ts}.`, body);
        for (const sig of v1) if (safeEqual(sig, mac)) return { ok: true, id: eventIdFromJson(body), timestamp: t.seconds * 1000 };
      }
      return { ok: false, reason: 'no matching signature' };
    },
  };
}

/** The `id` field of a JSON body (Stripe events), without failing on other bodies. */
function eventIdFromJson(body: Buffer): string | undefined {
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    if (v && typeof v === 'object' && typeof (v as { id?: unknown }).id === 'string') return (v as { id: string }).id;
  } catch {
    // not JSON: no id
  }
  return undefined;
}

interface HmacPreset {
  scheme: string;
  algorithm: HmacAlgorithm;
  header: string;
  encoding: SignatureEncoding;
  prefix: string;
  signed: string;
  timestampHeader?: string;
  idHeader?: string;
}

const PRESETS: Record<'github' | 'slack' | 'shopify', HmacPreset> = {
  github: { scheme: 'github', algorithm: 'sha256', header: 'x-hub-signature-256', encoding: 'hex', prefix: 'sha256=', signed: '{body}', idHeader: 'x-github-delivery' },
  slack: {
    scheme: 'slack',
    algorithm: 'sha256',
    header: 'x-slack-signature',
    encoding: 'hex',
    prefix: 'v0=',
    signed: 'v0:{timestamp}:{body}',
    timestampHeader: 'x-slack-request-timestamp',
  },
  shopify: { scheme: 'shopify', algorithm: 'sha256', header: 'x-shopify-hmac-sha256', encoding: 'base64', prefix: '', signed: '{body}', idHeader: 'x-shopify-webhook-id' },
};

function genericHmac(p: HmacPreset, config: VerifyConfig): Verifier {
  const keys = secrets(config);
  if (keys.length === 0) throw new TypeError(`${p.scheme} verification needs a secret`);
  const tolerance = config.toleranceMs ?? DEFAULT_TOLERANCE_MS;
  const sigHeader = p.header.toLowerCase();
  const tsHeader = p.timestampHeader?.toLowerCase();
  const idHeader = p.idHeader?.toLowerCase();
  const needsTs = p.signed.includes('{timestamp}') || tsHeader !== undefined;
  const template = p.signed.split(/(\{body\}|\{timestamp\}|\{id\})/).filter((s) => s !== '');
  return {
    scheme: p.scheme,
    verify(body, headers, now) {
      const raw = header(headers, sigHeader);
      if (!raw) return { ok: false, reason: `missing ${p.header}` };
      let timestamp: number | undefined;
      let tsText = '';
      if (needsTs) {
        tsText = tsHeader ? (header(headers, tsHeader) ?? '') : '';
        const t = checkTimestamp(tsText, now, tolerance);
        if (!t.ok) return t;
        timestamp = t.seconds * 1000;
      }
      const id = idHeader ? header(headers, idHeader) : undefined;
      // Several signatures may be sent, space- or comma-separated (key rotation).
      const candidates: Buffer[] = [];
      for (const part of raw.split(/[ ,]+/)) {
        if (!part.startsWith(p.prefix)) continue;
        const d = decode(part.slice(p.prefix.length), p.encoding);
        if (d) candidates.push(d);
      }
      if (candidates.length === 0) return { ok: false, reason: `malformed ${p.header}` };
      const parts = template.map((s) => (s === '{body}' ? body : s === '{timestamp}' ? tsText : s === '{id}' ? (id ?? '') : s));
      for (const key of keys) {
        const mac = hmac(p.algorithm, key, ...parts);
        for (const c of candidates) if (safeEqual(c, mac)) return { ok: true, id, timestamp };
      }
      return { ok: false, reason: 'no matching signature' };
    },
  };
}

/** Builds the verifier a `verify:` config names. */
export function createVerifier(config: VerifyConfig): Verifier {
  switch (config.scheme) {
    case 'standard-webhooks':
      return standardWebhooks(config);
    case 'stripe':
      return stripe(config);
    case 'github':
    case 'slack':
    case 'shopify': {
      const preset = PRESETS[config.scheme];
      return genericHmac({ ...preset, ...(config.idHeader ? { idHeader: config.idHeader } : {}) }, config);
    }
    case 'hmac': {
      if (!config.header) throw new TypeError('hmac verification needs a header');
      const p: HmacPreset = {
        scheme: 'hmac',
        algorithm: config.algorithm ?? 'sha256',
        header: config.header,
        encoding: config.encoding ?? 'hex',
        prefix: config.prefix ?? '',
        signed: config.signed ?? '{body}',
      };
      if (config.timestampHeader) p.timestampHeader = config.timestampHeader;
      if (config.idHeader) p.idHeader = config.idHeader;
      if (p.signed.includes('{timestamp}') && !p.timestampHeader) throw new TypeError('hmac verification signs {timestamp}: set timestampHeader');
      return genericHmac(p, config);
    }
    case 'none':
      return {
        scheme: 'none',
        verify: (_body, headers) => ({ ok: true, id: config.idHeader ? header(headers, config.idHeader) : undefined, timestamp: undefined }),
      };
  }
}

// ---------------------------------------------------------------- signing (outbound)

export interface SignConfig {
  readonly scheme: 'standard-webhooks' | 'stripe' | 'github' | 'shopify' | 'hmac' | 'none';
  readonly secret?: string;
  readonly algorithm?: HmacAlgorithm;
  readonly header?: string;
  readonly encoding?: SignatureEncoding;
  readonly prefix?: string;
}

/** Returns the headers that sign one delivery. `nowMs` from the injected clock. */
export type Signer = (id: string, body: Buffer, nowMs: number) => Record<string, string>;

export function createSigner(config: SignConfig): Signer {
  const secret = config.secret ?? '';
  if (config.scheme !== 'none' && secret === '') throw new TypeError(`signing with ${config.scheme} needs a secret`);
  switch (config.scheme) {
    case 'standard-webhooks': {
      const key = standardWebhooksKey(secret);
      return (id, body, now) => {
        const ts = String(Math.floor(now / 1000));
        const sig = hmac('sha256', key, `${id}.${ts}.`, body).toString('base64');
        return { 'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': `v1,${sig}` };
      };
    }
    case 'stripe':
      return (_id, body, now) => {
        const ts = String(Math.floor(now / 1000));
        return { 'stripe-signature': `t=${ts},v1=${hmac('sha256', secret, `${ts}.`, body).toString('hex')}` };
      };
    case 'github':
      return (id, body) => ({ 'x-hub-signature-256': `sha256=${hmac('sha256', secret, body).toString('hex')}`, 'x-github-delivery': id });
    case 'shopify':
      return (id, body) => ({ 'x-shopify-hmac-sha256': hmac('sha256', secret, body).toString('base64'), 'x-shopify-webhook-id': id });
    case 'hmac': {
      const name = (config.header ?? 'x-signature').toLowerCase();
      return (id, body) => ({
        [name]: `${config.prefix ?? ''}${hmac(config.algorithm ?? 'sha256', secret, body).toString(config.encoding ?? 'hex')}`,
        'x-webhook-id': id,
      });
    }
    case 'none':
      return (id) => ({ 'webhook-id': id });
  }
}
