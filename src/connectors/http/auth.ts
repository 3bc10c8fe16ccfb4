import { createHmac, createPrivateKey, randomUUID, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type * as Undici from 'undici';
import type { Dispatcher } from 'undici';
import type { Clock } from '../../core/clock.js';
import { IxError, errorMessage } from '../../core/errors.js';
import { parseDuration } from '../../core/units.js';
import type { AuthConfig } from './config.js';
import { lazyModule } from '../../core/lazy-module.js';

/** Loaded on first use: a spec without HTTP calls never loads undici. */
const undici = lazyModule<typeof Undici>('undici');

/** A request about to go out; auth providers add headers or query parameters to it. */
export interface OutgoingRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: Record<string, string>;
  readonly body: string | undefined;
}

export interface AuthProvider {
  /**
   * Adds credentials; returns what was used (so a refresh after 401 renews only a stale token),
   * synchronously when nothing has to be fetched first.
   */
  apply(req: OutgoingRequest, signal?: AbortSignal): string | undefined | Promise<string | undefined>;
  /** True when `refresh` can obtain new credentials (OAuth 2). */
  readonly refreshable: boolean;
  /** Renews credentials unless `used` is no longer the current ones (someone renewed already). */
  refresh(used: string | undefined, signal?: AbortSignal): Promise<void>;
}

export interface AuthDeps {
  readonly service: string;
  readonly clock: Clock;
  readonly baseDir: string;
  /** Used for the token endpoint. */
  readonly dispatcher?: Dispatcher;
  /** How long one token request may take (the service's timeout); 30 s when absent. */
  readonly timeoutMs?: number;
}

/**
 * Waits for `shared` unless `signal` aborts first: the waiter gives up, the shared work goes on
 * for the others. Rejects with the signal's reason.
 */
export function waitUnlessAborted<T>(shared: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return shared;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    shared.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}

/** PEM text as is, or the contents of a file path (relative to the spec). */
export function readKeyMaterial(value: string, baseDir: string): string {
  if (value.includes('-----BEGIN')) return value;
  return readFileSync(resolve(baseDir, value), 'utf8');
}

const noAuth: AuthProvider = {
  apply: () => undefined,
  refreshable: false,
  refresh: () => Promise.resolve(),
};

export function createAuth(config: AuthConfig | undefined, deps: AuthDeps): AuthProvider {
  if (!config || config.type === 'none') return noAuth;
  switch (config.type) {
    case 'api-key':
      return {
        refreshable: false,
        refresh: () => Promise.resolve(),
        apply(req) {
          const name = config.name ?? 'X-API-Key';
          if (config.in === 'query') req.url.searchParams.set(name, config.key);
          else req.headers[name.toLowerCase()] = config.key;
          return undefined;
        },
      };
    case 'basic': {
      const value = `Basic ${Buffer.from(`${config.username}:${config.password}`).toString('base64')}`;
      return {
        refreshable: false,
        refresh: () => Promise.resolve(),
        apply(req) {
          req.headers['authorization'] = value;
          return undefined;
        },
      };
    }
    case 'bearer':
      return {
        refreshable: false,
        refresh: () => Promise.resolve(),
        apply(req) {
          req.headers['authorization'] = `Bearer ${config.token}`;
          return undefined;
        },
      };
    case 'oauth2':
      return new OAuth2Auth(config, deps);
    case 'jwt':
      return new JwtAuth(config, deps);
    case 'hmac':
      return new HmacAuth(config, deps.clock);
  }
}

type OAuthConfig = Extract<AuthConfig, { type: 'oauth2' }>;

interface Token {
  readonly value: string;
  readonly type: string;
  /** ms since epoch, or Infinity when the server gave no expiry. */
  readonly expiresAt: number;
}

/**
 * OAuth 2.0 client credentials and refresh-token grants. The token is cached, renewed
 * `refreshBefore` ahead of its expiry and once after a 401; one request to the token endpoint
 * at a time however many calls wait for it. That request has its own deadline (the service's
 * timeout), never a caller's signal: a caller that gives up stops waiting, the others keep
 * the shared request.
 */
export class OAuth2Auth implements AuthProvider {
  readonly refreshable = true;
  private token: Token | undefined;
  private inflight: Promise<Token> | undefined;
  private refreshToken: string | undefined;
  private readonly refreshBeforeMs: number;
  /** Requests made to the token endpoint (for tests and metrics). */
  tokenRequests = 0;

  constructor(
    private readonly config: OAuthConfig,
    private readonly deps: AuthDeps,
  ) {
    this.refreshToken = config.refreshToken;
    this.refreshBeforeMs = parseDuration((config.refreshBefore ?? '30s') as string | number);
    if (config.grant === 'refresh-token' && !config.refreshToken) {
      throw new IxError('IX_SERVICE_CONFIG', { service: deps.service, detail: 'oauth2 refresh-token grant needs refreshToken' });
    }
  }

  async apply(req: OutgoingRequest, signal?: AbortSignal): Promise<string | undefined> {
    const token = await this.current(signal);
    req.headers['authorization'] = `${token.type} ${token.value}`;
    return token.value;
  }

  async refresh(used: string | undefined, signal?: AbortSignal): Promise<void> {
    if (this.inflight) {
      await waitUnlessAborted(this.inflight, signal);
      return;
    }
    if (this.token && used !== undefined && this.token.value !== used) return; // already renewed
    this.token = undefined;
    await this.current(signal);
  }

  private current(signal?: AbortSignal): Promise<Token> {
    const t = this.token;
    if (t && this.deps.clock.now() < t.expiresAt - this.refreshBeforeMs) return Promise.resolve(t);
    if (!this.inflight) {
      this.inflight = this.fetchToken().then(
        (tok) => {
          this.token = tok;
          this.inflight = undefined;
          return tok;
        },
        (err: unknown) => {
          this.inflight = undefined;
          throw err;
        },
      );
    }
    return waitUnlessAborted(this.inflight, signal);
  }

  private async fetchToken(): Promise<Token> {
    const c = this.config;
    const form = new URLSearchParams();
    if (c.grant === 'refresh-token') {
      form.set('grant_type', 'refresh_token');
      form.set('refresh_token', this.refreshToken ?? '');
    } else {
      form.set('grant_type', 'client_credentials');
    }
    if (c.scope) form.set('scope', c.scope);
    if (c.audience) form.set('audience', c.audience);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (c.clientAuth === 'body') {
      form.set('client_id', c.clientId);
      if (c.clientSecret !== undefined) form.set('client_secret', c.clientSecret);
    } else {
      const user = encodeURIComponent(c.clientId);
      const pass = encodeURIComponent(c.clientSecret ?? '');
      headers['authorization'] = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    }
    this.tokenRequests++;
    const started = this.deps.clock.now();
    const timeoutMs = this.deps.timeoutMs ?? 30_000;
    const deadline = AbortSignal.timeout(timeoutMs);
    let status: number;
    let text: string;
    try {
      const res = await undici().request(c.tokenUrl, {
        method: 'POST',
        headers,
        body: form.toString(),
        signal: deadline,
        ...(this.deps.dispatcher ? { dispatcher: this.deps.dispatcher } : {}),
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      const detail = deadline.aborted ? `token endpoint did not answer within ${timeoutMs}ms` : `token endpoint unreachable: ${errorMessage(err)}`;
      throw new IxError('IX_SERVICE_AUTH', { service: this.deps.service, detail }, { cause: err });
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new IxError('IX_SERVICE_AUTH', { service: this.deps.service, detail: `token endpoint answered ${status} with a body that is not JSON` });
    }
    if (status < 200 || status >= 300 || typeof body['access_token'] !== 'string') {
      // The OAuth error code only: the body may echo credentials.
      const code = typeof body['error'] === 'string' ? `: ${body['error']}` : '';
      throw new IxError(
        'IX_SERVICE_AUTH',
        { service: this.deps.service, detail: `token endpoint answered ${status}${code}` },
        { retryable: status >= 500 || status === 429 },
      );
    }
    if (typeof body['refresh_token'] === 'string') this.refreshToken = body['refresh_token'];
    const expiresIn = Number(body['expires_in']);
    const type = typeof body['token_type'] === 'string' && body['token_type'].toLowerCase() !== 'bearer' ? body['token_type'] : 'Bearer';
    return {
      value: body['access_token'],
      type,
      expiresAt: Number.isFinite(expiresIn) && expiresIn > 0 ? started + expiresIn * 1000 : Number.POSITIVE_INFINITY,
    };
  }
}

type JwtConfig = Extract<AuthConfig, { type: 'jwt' }>;

function b64url(input: Buffer | string): string {
  return Buffer.from(input).toString('base64url');
}

/** Signs a JWT (HS256, RS256, ES256) with node:crypto. */
export function signJwt(alg: 'HS256' | 'RS256' | 'ES256', key: string | KeyObject, payload: Record<string, unknown>, kid?: string): string {
  const header: Record<string, string> = { alg, typ: 'JWT' };
  if (kid) header['kid'] = kid;
  const data = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  let sig: Buffer;
  if (alg === 'HS256') sig = createHmac('sha256', key).update(data).digest();
  else if (alg === 'RS256') sig = cryptoSign('sha256', Buffer.from(data), key);
  else sig = cryptoSign('sha256', Buffer.from(data), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
  return `${data}.${b64url(sig)}`;
}

/** JWT bearer: a short-lived token signed locally, re-signed before it expires. */
export class JwtAuth implements AuthProvider {
  readonly refreshable = true;
  private readonly key: string | KeyObject;
  private readonly ttlMs: number;
  private cached: { value: string; expiresAt: number } | undefined;

  constructor(
    private readonly config: JwtConfig,
    private readonly deps: AuthDeps,
  ) {
    this.ttlMs = parseDuration((config.ttl ?? '5m') as string | number);
    try {
      this.key = config.algorithm === 'HS256' ? config.key : createPrivateKey(readKeyMaterial(config.key, deps.baseDir));
    } catch (err) {
      throw new IxError('IX_SERVICE_CONFIG', { service: deps.service, detail: `jwt key is not a usable ${config.algorithm} private key (${(err as Error).name})` });
    }
  }

  apply(req: OutgoingRequest): Promise<string | undefined> {
    const now = this.deps.clock.now();
    if (!this.cached || now >= this.cached.expiresAt - Math.min(30_000, this.ttlMs / 10)) {
      const iat = Math.floor(now / 1000);
      const exp = Math.floor((now + this.ttlMs) / 1000);
      const payload: Record<string, unknown> = { ...this.config.claims, iat, exp, jti: randomUUID() };
      if (this.config.issuer) payload['iss'] = this.config.issuer;
      if (this.config.subject) payload['sub'] = this.config.subject;
      if (this.config.audience) payload['aud'] = this.config.audience;
      this.cached = { value: signJwt(this.config.algorithm, this.key, payload, this.config.keyId), expiresAt: now + this.ttlMs };
    }
    const header = (this.config.header ?? 'Authorization').toLowerCase();
    req.headers[header] = header === 'authorization' ? `Bearer ${this.cached.value}` : this.cached.value;
    return Promise.resolve(this.cached.value);
  }

  refresh(): Promise<void> {
    this.cached = undefined;
    return Promise.resolve();
  }
}

type HmacConfig = Extract<AuthConfig, { type: 'hmac' }>;

/** HMAC request signing: a timestamp header and a signature over timestamp, method, path and body. */
export class HmacAuth implements AuthProvider {
  readonly refreshable = false;
  private readonly config: Required<HmacConfig>;
  constructor(
    config: HmacConfig,
    private readonly clock: Clock,
  ) {
    this.config = {
      algorithm: 'sha256',
      header: 'X-Signature',
      timestampHeader: 'X-Timestamp',
      encoding: 'hex',
      prefix: '',
      payload: '{timestamp}.{method}.{path}.{body}',
      ...config,
    } as Required<HmacConfig>;
  }

  apply(req: OutgoingRequest): Promise<string | undefined> {
    const ts = String(Math.floor(this.clock.now() / 1000));
    const signed = this.config.payload.replace(/\{(timestamp|method|path|body)\}/g, (_m, k: string) => {
      if (k === 'timestamp') return ts;
      if (k === 'method') return req.method.toUpperCase();
      if (k === 'path') return req.url.pathname + req.url.search;
      return req.body ?? '';
    });
    const sig = createHmac(this.config.algorithm, this.config.secret).update(signed).digest(this.config.encoding);
    req.headers[this.config.timestampHeader.toLowerCase()] = ts;
    req.headers[this.config.header.toLowerCase()] = `${this.config.prefix}${sig}`;
    return Promise.resolve(undefined);
  }

  refresh(): Promise<void> {
    return Promise.resolve();
  }
}
