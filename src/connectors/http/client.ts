import type * as Undici from 'undici';
import type { Dispatcher } from 'undici';
import type { Clock } from '../../core/clock.js';
import { IxError, errorMessage, formatTemplate } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { parseDuration, parseRate } from '../../core/units.js';
import { backoffDelay, parseRetryAfter, type BackoffOptions } from '../../resilience/backoff.js';
import { BreakerFailure, CircuitBreaker, isBrokenCircuitError } from '../../resilience/breaker.js';
import { Bulkhead } from '../../resilience/bulkhead.js';
import { exchange, ResponseTooLargeError } from '../../resilience/exchange.js';
import { Deadlines } from '../../resilience/timeout.js';
import { SignalWatch } from '../../resilience/signal-watch.js';
import { BlockRateGate, MemoryRateGate, SendLog, takeRate, type RateGate, type RateSpec } from '../../resilience/rate-limiter.js';
import { createAuth, readKeyMaterial, type AuthProvider, type OutgoingRequest } from './auth.js';
import type { BreakerConfig, EndpointConfig, ErrorRule, RateLimitConfig, RetryConfig, ServiceConfig } from './config.js';
import { countsForBreaker, ErrorsTable, type Failure } from './errors-table.js';
import { serviceMetrics } from './metrics.js';
import { compilePath, compileTemplate, type Compiled } from './template.js';
import { compileSchema, describeViolations } from '../../transform/steps/validate.js';
import { lazyModule } from '../../core/lazy-module.js';

/** Loaded on first use: a spec without HTTP calls never loads undici. */
const undici = lazyModule<typeof Undici>('undici');

/** What one call needs beyond the endpoint's own declaration. */
export interface CallInput {
  /** Scope for `${…}` templates (a message: payload, headers, meta, id, key). */
  readonly scope?: unknown;
  /** `{name}` path parameters. */
  readonly params?: Readonly<Record<string, unknown>>;
  /** Query parameters added to (and overriding) the endpoint's. */
  readonly query?: Readonly<Record<string, unknown>>;
  /** Request body; overrides the endpoint's body template. */
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  /** An absolute URL to call instead of the endpoint's path (a pagination `next` link). */
  readonly url?: string;
  /** Checks a 2xx body; a returned failure goes through the errors table (GraphQL errors). */
  readonly check?: (body: unknown) => Failure | undefined;
}

export interface CallResult {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: unknown;
  /** Attempts made, the first included. */
  readonly attempts: number;
  /** The server answered 304 to If-None-Match; `body` is the cached one. */
  readonly notModified: boolean;
}

export interface ServiceDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly baseDir: string;
  /** Where rate limits are reserved: the Store (shared across processes) or memory. */
  readonly rateGate?: RateGate;
  /** Randomness for jitter (tests pass a fixed one). */
  readonly random?: () => number;
  /** A dispatcher to use instead of the service's own keep-alive Agent. */
  readonly dispatcher?: Dispatcher;
}

interface RateRule {
  readonly spec: RateSpec;
  readonly key: Compiled | undefined;
  readonly bucket: string;
}

/** One endpoint, compiled once. */
export class Endpoint {
  readonly method: string;
  readonly path: (params: Readonly<Record<string, unknown>>, scope: unknown) => string;
  readonly query: Compiled | undefined;
  readonly body: Compiled | undefined;
  readonly headers: Readonly<Record<string, string>>;
  /** `headers` with `content-type: application/json`, for a JSON body. */
  readonly jsonHeaders: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly rates: readonly RateRule[];
  /** The rate buckets when no rule has a key template (the same for every call), else undefined. */
  readonly fixedBuckets: readonly string[] | undefined;
  readonly retry: BackoffOptions & { readonly attempts: number };
  readonly errors: ErrorsTable;
  readonly breaker: CircuitBreaker | undefined;
  readonly conditional: boolean;
  /** With `response.validate`: what is wrong with a 2xx body, or undefined when it matches the schema. */
  readonly checkResponse: ((body: unknown) => string | undefined) | undefined;
  /** `service.endpoint`, as errors name the call. */
  readonly callName: string;
  /** Why the endpoint was disabled (410 → disable), if it was. */
  disabled: string | undefined;
  private readonly etags = new Map<string, { etag: string; body: unknown }>();

  constructor(
    readonly service: string,
    readonly name: string,
    readonly config: EndpointConfig,
    svc: ServiceConfig,
  ) {
    this.method = config.method ?? 'GET';
    this.path = compilePath(config.path ?? '');
    this.query = config.query ? compileTemplate(config.query) : undefined;
    this.body = config.body !== undefined ? compileTemplate(config.body) : undefined;
    this.headers = lowerKeys({ accept: 'application/json', ...svc.headers, ...config.headers });
    this.jsonHeaders = { ...this.headers, 'content-type': 'application/json' };
    this.callName = `${service}.${name}`;
    this.timeoutMs = parseDuration((config.timeout ?? svc.timeout ?? '30s') as string | number);
    this.rates = [...rateRules(svc.rateLimit, `svc:${service}`), ...rateRules(config.rateLimit, `svc:${service}:${name}`)];
    this.fixedBuckets = this.rates.some((r) => r.key) ? undefined : this.rates.map((r) => r.bucket);
    this.retry = retryOptions(config.retry ?? svc.retry);
    this.errors = new ErrorsTable(svc.errors, config.errors);
    const breakerCfg = config.circuitBreaker ?? svc.circuitBreaker;
    this.breaker = breakerCfg === false ? undefined : breakerFrom(breakerCfg, (s) => serviceMetrics.breakerState(service, name, s));
    if (this.breaker) serviceMetrics.breakerState(service, name, 'closed');
    this.conditional = config.conditional === true && this.method === 'GET';
    this.checkResponse = config.response?.validate === true && config.response.schema !== undefined ? responseChecker(config.response.schema, `services.${service}.endpoints.${name}.response.schema`) : undefined;
  }

  etagFor(url: string): { etag: string; body: unknown } | undefined {
    return this.etags.get(url);
  }
  rememberEtag(url: string, etag: string, body: unknown): void {
    if (this.etags.size >= 1000) this.etags.delete(this.etags.keys().next().value as string);
    this.etags.set(url, { etag, body });
  }
}

/** The most schema violations one failure lists. */
const MAX_VIOLATIONS = 5;

function responseChecker(schema: unknown, where: string): (body: unknown) => string | undefined {
  const validate = compileSchema(schema, where);
  return (body) => {
    if (validate(body)) return undefined;
    const all = describeViolations(validate.errors ?? []);
    return all.slice(0, MAX_VIOLATIONS).join('; ') + (all.length > MAX_VIOLATIONS ? ` (and ${all.length - MAX_VIOLATIONS} more)` : '');
  };
}

function lowerKeys(h: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = v;
  return out;
}

function rateRules(cfg: RateLimitConfig | undefined, bucket: string): RateRule[] {
  if (cfg === undefined) return [];
  const list = Array.isArray(cfg) ? cfg : [cfg];
  return list.map((c, i) => {
    const b = list.length > 1 ? `${bucket}#${i}` : bucket;
    if (typeof c === 'string') return { spec: parseRate(c), key: undefined, bucket: b };
    const r = parseRate(c.limit);
    return { spec: c.burst ? { ...r, burst: c.burst } : r, key: c.key ? compileTemplate(c.key) : undefined, bucket: b };
  });
}

function retryOptions(cfg: RetryConfig | undefined): BackoffOptions & { attempts: number } {
  return {
    attempts: cfg?.attempts ?? 3,
    kind: cfg?.backoff ?? 'exponential',
    initialMs: parseDuration((cfg?.initial ?? '200ms') as string | number),
    maxMs: parseDuration((cfg?.max ?? '30s') as string | number),
    jitter: cfg?.jitter ?? true,
  };
}

function breakerFrom(cfg: BreakerConfig | undefined, onState: ConstructorParameters<typeof CircuitBreaker>[1]): CircuitBreaker {
  return new CircuitBreaker(
    {
      failureRatio: cfg?.failureRatio ?? 0.5,
      minCalls: cfg?.minCalls ?? 20,
      windowMs: parseDuration((cfg?.window ?? '30s') as string | number),
      halfOpenAfterMs: parseDuration((cfg?.halfOpenAfter ?? '10s') as string | number),
    },
    onState,
  );
}

type AttemptOutcome =
  | { readonly ok: true; readonly status: number; readonly headers: Record<string, string | string[] | undefined>; readonly body: unknown; readonly notModified: boolean }
  | { readonly ok: false; readonly failure: Failure; readonly detail: string; readonly headers?: Record<string, string | string[] | undefined> };

/** Renewals of credentials within one call (each after a 401 on a different credential). */
const MAX_RENEWALS = 3;

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * A REST service from the spec's `services:` section: a keep-alive undici Agent, auth, and per
 * endpoint the rate limits, bulkhead, circuit breaker, timeout, retries and errors table.
 */
export class RestService {
  readonly type: 'rest' | 'graphql';
  readonly baseUrl: URL;
  /** `baseUrl.origin`, which the URL getter would build anew on every call. */
  private readonly origin: string;
  /** `origin` + '/', which the href of a URL on the origin starts with. */
  private readonly originPath: string;
  readonly auth: AuthProvider;
  readonly endpoints = new Map<string, Endpoint>();
  private readonly dispatcher: Dispatcher;
  private readonly ownDispatcher: boolean;
  private readonly bulkhead: Bulkhead;
  private readonly gate: RateGate;
  private readonly sendLog: SendLog;
  private readonly random: () => number;
  /** A flow's signal aborting aborts the attempts in flight under it (they are all in `deadlines`). */
  private readonly aborts = new SignalWatch((signal) => {
    for (const d of this.deadlines.values()) d.abortUnder(signal, signal.reason);
  });
  /** Attempt deadlines by timeout (ms). */
  private readonly deadlines = new Map<number, Deadlines>();

  constructor(
    readonly name: string,
    readonly config: ServiceConfig,
    readonly deps: ServiceDeps,
  ) {
    this.type = config.type ?? 'rest';
    try {
      this.baseUrl = new URL(config.baseUrl.endsWith('/') ? config.baseUrl : `${config.baseUrl}/`);
    } catch {
      throw new IxError('IX_SERVICE_CONFIG', { service: name, detail: `baseUrl "${config.baseUrl}" is not a URL` });
    }
    this.origin = this.baseUrl.origin;
    this.originPath = `${this.origin}/`;
    const connectTimeout = parseDuration((config.connectTimeout ?? '10s') as string | number);
    const tls = config.tls;
    const connect: Record<string, unknown> = { timeout: connectTimeout };
    if (tls) {
      if (tls.cert) connect['cert'] = readKeyMaterial(tls.cert, deps.baseDir);
      if (tls.key) connect['key'] = readKeyMaterial(tls.key, deps.baseDir);
      if (tls.ca) connect['ca'] = readKeyMaterial(tls.ca, deps.baseDir);
      if (tls.passphrase) connect['passphrase'] = tls.passphrase;
      if (tls.servername) connect['servername'] = tls.servername;
      connect['rejectUnauthorized'] = tls.rejectUnauthorized !== false;
    }
    this.ownDispatcher = deps.dispatcher === undefined;
    this.dispatcher = deps.dispatcher ?? new (undici().Agent)({ connections: config.connections ?? 64, connect, keepAliveTimeout: 30_000, pipelining: 1 });
    this.auth = createAuth(config.auth, {
      service: name,
      clock: deps.clock,
      baseDir: deps.baseDir,
      dispatcher: this.dispatcher,
      timeoutMs: parseDuration((config.timeout ?? '30s') as string | number),
    });
    this.bulkhead = new Bulkhead(config.maxConcurrent ?? 64);
    this.gate = deps.rateGate ? new BlockRateGate(deps.rateGate, deps.clock) : new MemoryRateGate(deps.clock);
    this.sendLog = new SendLog(deps.clock);
    this.random = deps.random ?? Math.random;
    for (const [epName, ep] of Object.entries(config.endpoints ?? {})) this.endpoints.set(epName, new Endpoint(name, epName, ep, config));
  }

  endpoint(name: string): Endpoint {
    const ep = this.endpoints.get(name);
    if (!ep) {
      const known = [...this.endpoints.keys()];
      throw new IxError('IX_SERVICE_UNKNOWN_ENDPOINT', { service: this.name, endpoint: name, hint: known.length ? ` (known: ${known.join(', ')})` : '' });
    }
    return ep;
  }

  /** An endpoint not declared in the spec (GraphQL documents, ad-hoc calls), cached by name. */
  adHoc(name: string, config: EndpointConfig): Endpoint {
    let ep = this.endpoints.get(name);
    if (!ep) {
      ep = new Endpoint(this.name, name, config, this.config);
      this.endpoints.set(name, ep);
    }
    return ep;
  }

  /** Calls an endpoint under its policies. Throws IxError: retryable or not, per the errors table. */
  async call(endpoint: string | Endpoint, input: CallInput = {}): Promise<CallResult> {
    const ep = typeof endpoint === 'string' ? this.endpoint(endpoint) : endpoint;
    const started = performance.now();
    if (input.signal) this.aborts.watch(input.signal);
    const scope = input.scope ?? {};
    const { url, bodyText, json } = this.buildRequest(ep, input, scope);
    const href = url.href;

    let perKey: Map<string, number> | undefined;
    let attempts = 0;
    // Credentials renewed after a 401, by the credential that was refused: a call renews once
    // per refused credential (another call may have renewed meanwhile), at most MAX_RENEWALS.
    let renewedFrom: (string | undefined)[] | undefined;
    const state: CallState = { credential: undefined };
    for (;;) {
      if (ep.disabled) throw new IxError('IX_SERVICE_DISABLED', { call: ep.callName, detail: ep.disabled });
      let buckets: readonly string[] | undefined;
      if (ep.rates.length > 0) {
        buckets = ep.fixedBuckets ?? ep.rates.map((r) => (r.key ? `${r.bucket}:key:${String(r.key(scope))}` : r.bucket));
        for (let i = 0; i < buckets.length; i++) {
          const taken = takeRate(this.gate, this.deps.clock, buckets[i] as string, (ep.rates[i] as RateRule).spec, input.signal);
          const waited = typeof taken === 'number' ? taken : await taken;
          if (waited > 0) serviceMetrics.rateWait(this.name, ep.name, waited);
        }
      }
      attempts++;
      state.credential = undefined;
      let outcome: AttemptOutcome;
      try {
        // the bulkhead, then the breaker, then the attempt, as bulkhead.execute(breaker.execute(…))
        // would run them, without their closures and promises on the usual (closed) path
        const entered = this.bulkhead.enter(input.signal);
        if (entered) await entered;
        try {
          const breaker = ep.breaker;
          if (breaker === undefined) outcome = await this.attempt(ep, input, url, href, bodyText, json, buckets, state);
          else if (breaker.isClosed) {
            outcome = await this.attempt(ep, input, url, href, bodyText, json, buckets, state);
            if (!outcome.ok && countsForBreaker(outcome.failure)) await this.breakerFailed(breaker, outcome, input.signal);
            else breaker.succeeded();
          } else {
            outcome = await this.throughBreaker(breaker, async () => {
              const o = await this.attempt(ep, input, url, href, bodyText, json, buckets, state);
              if (!o.ok && countsForBreaker(o.failure)) throw new BreakerFailure(o);
              return o;
            });
          }
        } finally {
          this.bulkhead.leave();
        }
      } catch (err) {
        if (isBrokenCircuitError(err)) {
          serviceMetrics.call(this.name, ep.name, 'circuit-open', (performance.now() - started) / 1000);
          throw new IxError('IX_SERVICE_CIRCUIT_OPEN', { call: ep.callName }, { cause: err });
        }
        if (input.signal?.aborted) throw err;
        if (err instanceof IxError) throw err; // auth failures
        throw new IxError('IX_SERVICE_NETWORK', { call: ep.callName, detail: errorMessage(err) }, { cause: err });
      }
      const usedCredential = state.credential;

      if (outcome.ok) {
        serviceMetrics.call(this.name, ep.name, statusLabel(outcome.status), (performance.now() - started) / 1000);
        return { status: outcome.status, headers: outcome.headers, body: outcome.body, attempts, notModified: outcome.notModified };
      }

      const { key, rule } = ep.errors.lookup(outcome.failure);
      const error = (retryable: boolean, suffix = ''): IxError => {
        serviceMetrics.call(this.name, ep.name, failureLabel(outcome.failure), (performance.now() - started) / 1000);
        return failureError(ep.callName, outcome.failure, outcome.detail + suffix, ep.timeoutMs, retryable);
      };
      switch (rule.action) {
        case 'retry': {
          perKey ??= new Map<string, number>();
          const used = (perKey.get(key) ?? 0) + 1;
          perKey.set(key, used);
          const limit = rule.attempts ?? ep.retry.attempts;
          if (used >= limit) throw error(false, ` (gave up after ${attempts} attempt${attempts === 1 ? '' : 's'})`);
          const delay = this.retryDelay(rule, outcome, ep, used);
          serviceMetrics.retry(this.name, ep.name, key);
          this.deps.logger.debug({ service: this.name, endpoint: ep.name, reason: key, attempt: attempts, delayMs: delay }, 'service call retry');
          await this.deps.clock.sleep(delay, input.signal);
          continue;
        }
        case 'refresh-auth':
          if (this.auth.refreshable && (renewedFrom === undefined || (renewedFrom.length < MAX_RENEWALS && !renewedFrom.includes(usedCredential)))) {
            (renewedFrom ??= []).push(usedCredential);
            serviceMetrics.retry(this.name, ep.name, 'refresh-auth');
            await this.auth.refresh(usedCredential, input.signal);
            continue;
          }
          throw error(false, this.auth.refreshable ? ' (still refused after renewing credentials)' : '');
        case 'dead-letter':
          throw error(false);
        case 'fail':
          throw error(true);
        case 'disable':
          ep.disabled = formatTemplate('answered {detail}', { detail: describeFailure(outcome.failure) });
          this.deps.logger.warn({ service: this.name, endpoint: ep.name, reason: ep.disabled }, 'endpoint disabled by its errors table');
          throw new IxError('IX_SERVICE_DISABLED', { call: ep.callName, detail: ep.disabled });
      }
    }
  }

  /** The URL and body text of one call, and whether the body is JSON; throws IX_SERVICE_CONFIG when it cannot be built. */
  private buildRequest(ep: Endpoint, input: CallInput, scope: unknown): { url: URL; bodyText: string | undefined; json: boolean } {
    let url: URL;
    let bodyText: string | undefined;
    let json = false;
    try {
      if (input.url) url = new URL(input.url);
      else {
        const path = ep.path(input.params ?? {}, scope);
        url = new URL(path.charCodeAt(0) === 47 ? path.slice(1) : path, this.baseUrl); // without its leading '/'
      }
      if (!input.url) {
        if (ep.query) for (const [k, v] of Object.entries(ep.query(scope) as Record<string, unknown>)) if (!input.query || !(k in input.query)) appendQuery(url, k, v);
        if (input.query) for (const k in input.query) appendQuery(url, k, input.query[k]);
      } else if (input.query) {
        for (const k in input.query) appendQuery(url, k, input.query[k], true);
      }
      const body = input.body !== undefined ? input.body : ep.body ? ep.body(scope) : undefined;
      if (body !== undefined && ep.method !== 'GET' && ep.method !== 'HEAD') {
        if (typeof body === 'string' || Buffer.isBuffer(body)) bodyText = String(body);
        else {
          bodyText = JSON.stringify(body);
          json = true;
        }
      }
    } catch (err) {
      throw new IxError('IX_SERVICE_CONFIG', { service: this.name, detail: `${ep.name}: cannot build the request: ${errorMessage(err)}` }, { retryable: false, cause: err });
    }
    // Calls stay on the service's origin: a pagination link or an endpoint path cannot send
    // the service's credentials to another host.
    // (an href that starts with the origin and '/' has that origin: the getter builds a string)
    if (!url.href.startsWith(this.originPath) && url.origin !== this.origin) {
      throw new IxError('IX_SERVICE_CONFIG', { service: this.name, detail: `${ep.name}: refusing to call ${url.origin}, which is not the service's origin ${this.origin}` }, { retryable: false });
    }
    return { url, bodyText, json };
  }

  /** Samples a failure of a call begun while the circuit was closed (BreakerFailure is how it comes back). */
  private async breakerFailed(breaker: CircuitBreaker, outcome: AttemptOutcome, signal: AbortSignal | undefined): Promise<void> {
    try {
      await breaker.failed(new BreakerFailure(outcome), signal);
    } catch (err) {
      if (!(err instanceof BreakerFailure)) throw err;
    }
  }

  private async throughBreaker(breaker: CircuitBreaker, run: () => Promise<AttemptOutcome>): Promise<AttemptOutcome> {
    try {
      return await breaker.execute(run);
    } catch (err) {
      if (err instanceof BreakerFailure) return err.inner as AttemptOutcome;
      throw err;
    }
  }

  private retryDelay(rule: ErrorRule, outcome: Extract<AttemptOutcome, { ok: false }>, ep: Endpoint, used: number): number {
    const backoff = backoffDelay(ep.retry, used, this.random);
    if (rule.respectRetryAfter === false) return backoff;
    const header = outcome.headers?.['retry-after'];
    const after = parseRetryAfter(Array.isArray(header) ? header[0] : header, this.deps.clock.now());
    if (after === undefined) return backoff;
    const cap = parseDuration((rule.maxWait ?? '5m') as string | number);
    return Math.min(after, cap);
  }

  /**
   * One attempt, in its bulkhead slot and past the breaker: the headers, the send log of the rate
   * limits, credentials (the one used lands in `state`), then one request under a deadline of
   * `timeout` for the whole answer, headers and body.
   */
  private async attempt(
    ep: Endpoint,
    input: CallInput,
    url: URL,
    cacheKey: string,
    bodyText: string | undefined,
    json: boolean,
    buckets: readonly string[] | undefined,
    state: CallState,
  ): Promise<AttemptOutcome> {
    // Object.assign, not a spread: V8 copies a spread object slowly once a key is added to it
    // (and the endpoint's headers hold no own __proto__ key: lowerKeys assigns them)
    const headers: Record<string, string> = Object.assign({}, json ? ep.jsonHeaders : ep.headers);
    if (input.headers) for (const k in input.headers) headers[k.toLowerCase()] = input.headers[k] as string;
    const cached = ep.conditional ? ep.etagFor(cacheKey) : undefined;
    if (cached) headers['if-none-match'] = cached.etag;
    const req: OutgoingRequest = { method: ep.method, url, headers, body: bodyText };
    if (buckets) {
      for (let i = 0; i < buckets.length; i++) {
        const admitted = this.sendLog.admit(buckets[i] as string, (ep.rates[i] as RateRule).spec, input.signal);
        if (admitted) await admitted;
      }
    }
    const applied = this.auth.apply(req, input.signal);
    state.credential = typeof applied === 'object' ? await applied : applied;
    if (input.signal?.aborted) throw input.signal.reason;
    // one deadline queue per timeout: no AbortController nor timer pair per attempt
    let deadlines = this.deadlines.get(ep.timeoutMs);
    if (!deadlines) {
      const ms = ep.timeoutMs;
      deadlines = new Deadlines(ms);
      this.deadlines.set(ms, deadlines);
    }
    const controller = deadlines.start();
    // call() watches the signal: its abort aborts this attempt
    controller.parent = input.signal;
    try {
      const res = await exchange(this.dispatcher, {
        origin: this.origin, // buildRequest refused any other
        path: req.url.pathname + req.url.search,
        method: req.method as Dispatcher.HttpMethod,
        headers: req.headers,
        body: req.body,
        abort: controller,
      });
      const text = res.text;
      const headers = res.headers;
      const status = res.statusCode;
      if (status === 304 && cached) return { ok: true, status, headers, body: cached.body, notModified: true };
      if (status < 200 || status >= 300) {
        const snippet = text.length > 0 ? `: ${text.slice(0, 200).replace(/\s+/g, ' ')}` : '';
        return { ok: false, failure: { kind: 'status', status }, detail: snippet, headers };
      }
      let body: unknown = text;
      const ct = String(headers['content-type'] ?? '');
      if (text.length === 0) body = null;
      else if (ct.includes('json')) {
        try {
          body = JSON.parse(text);
        } catch (err) {
          return { ok: false, failure: { kind: 'invalid-response' }, detail: `${status} with malformed JSON: ${errorMessage(err)}`, headers };
        }
      }
      const problem = input.check?.(body);
      if (problem) return { ok: false, failure: problem, detail: graphqlDetail(body), headers };
      const mismatch = ep.checkResponse?.(body);
      if (mismatch !== undefined) return { ok: false, failure: { kind: 'invalid-response' }, detail: `${status} does not match the response schema: ${mismatch}`, headers };
      const etag = headers['etag'];
      if (ep.conditional && typeof etag === 'string') ep.rememberEtag(cacheKey, etag, body);
      return { ok: true, status, headers, body, notModified: false };
    } catch (err) {
      if (input.signal?.aborted) throw err;
      if (err instanceof ResponseTooLargeError) return { ok: false, failure: { kind: 'invalid-response' }, detail: err.message };
      const code = (err as { code?: string }).code ?? '';
      if (controller.timedOut || TIMEOUT_CODES.has(code)) return { ok: false, failure: { kind: 'timeout' }, detail: '' };
      if (NETWORK_CODES.has(code) || code.startsWith('UND_ERR') || code.startsWith('E')) {
        return { ok: false, failure: { kind: 'network' }, detail: `${code}${code ? ' ' : ''}${errorMessage(err)}` };
      }
      throw err;
    } finally {
      deadlines.finish(controller);
    }
  }

  async close(): Promise<void> {
    if (this.ownDispatcher) await this.dispatcher.close();
  }
}

/** What an attempt reports back to its call besides its outcome. */
interface CallState {
  /** The credential the attempt was sent with (a 401 renews that one). */
  credential: string | undefined;
}

/** Status labels of the call metrics, made once per status code. */
const STATUS_LABELS: string[] = [];
function statusLabel(status: number): string {
  return (STATUS_LABELS[status] ??= String(status));
}

function appendQuery(url: URL, k: string, v: unknown, replace = false): void {
  if (v === undefined || v === null) return;
  if (replace) url.searchParams.delete(k);
  if (Array.isArray(v)) for (const item of v) url.searchParams.append(k, String(item));
  else url.searchParams.set(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
}

function graphqlDetail(body: unknown): string {
  const errors = (body as { errors?: { message?: string }[] } | null)?.errors;
  if (!Array.isArray(errors)) return 'rejected';
  return errors
    .slice(0, 3)
    .map((e) => e.message ?? 'error')
    .join('; ');
}

function failureLabel(f: Failure): string {
  return f.kind === 'status' ? String(f.status) : f.kind;
}

function describeFailure(f: Failure): string {
  return f.kind === 'status' ? `HTTP ${f.status}` : f.kind;
}

function failureError(call: string, f: Failure, detail: string, timeoutMs: number, retryable: boolean): IxError {
  switch (f.kind) {
    case 'status':
      return new IxError('IX_SERVICE_HTTP', { call, status: f.status, detail }, { retryable });
    case 'timeout':
      return new IxError('IX_SERVICE_TIMEOUT', { call, timeout: timeoutMs }, { retryable });
    case 'network':
      return new IxError('IX_SERVICE_NETWORK', { call, detail }, { retryable });
    case 'invalid-response':
      return new IxError('IX_SERVICE_BAD_RESPONSE', { call, detail }, { retryable });
    case 'graphql':
      return new IxError('IX_GRAPHQL_ERRORS', { call, detail }, { retryable });
  }
}
