import type { Dispatcher } from 'undici';
import type { AttemptAbort } from './timeout.js';

/** One answer: status, headers (lower-case names, repeated ones as arrays) and the body read. */
export interface Exchange {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The body as UTF-8 text (a leading BOM dropped), at most `keepBytes` of it. */
  readonly text: string;
  /** The body was longer than `keepBytes`: `text` is its beginning. */
  readonly truncated: boolean;
}

export interface ExchangeRequest {
  readonly origin: string;
  readonly path: string;
  readonly method: Dispatcher.HttpMethod;
  readonly headers: Record<string, string>;
  readonly body?: string | Buffer | undefined;
  /** Bytes of the body kept; the rest is read and dropped (default: all of it). */
  readonly keepBytes?: number;
  /**
   * Bytes read in all before the request is given up: past it, `tooLarge` says what to do:
   * `fail` rejects with IX_RESPONSE_TOO_LARGE, `truncate` answers with what was kept and closes
   * the connection. Default 64 MiB, fail.
   */
  readonly maxBytes?: number;
  readonly tooLarge?: 'fail' | 'truncate';
  /** Aborts the request (a deadline, a stop): the promise rejects with its reason. */
  readonly abort?: AttemptAbort;
}

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

/** Thrown when an answer is longer than `maxBytes` and `tooLarge` is `fail`. */
export class ResponseTooLargeError extends Error {
  readonly code = 'IX_RESPONSE_TOO_LARGE';
  constructor(readonly limit: number) {
    super(`the answer is larger than ${limit} bytes`);
  }
}

/**
 * One request and its whole answer through undici's dispatcher, with a handler of our own in
 * place of `request()`: no Readable stream, no AsyncResource, no signal listener left on the
 * response until it closes. Per call that is less work, and, measured on the http-call path,
 * far fewer objects surviving into V8's old generation. Semantics are `request()` followed by
 * reading the body: 1xx answers skipped, redirects not followed, errors (network, abort) reject.
 */
export function exchange(dispatcher: Dispatcher, req: ExchangeRequest): Promise<Exchange> {
  return new Promise<Exchange>((resolve, reject) => {
    const handler = new ExchangeHandler(resolve, reject, req.keepBytes ?? Infinity, req.maxBytes ?? DEFAULT_MAX_BYTES, req.tooLarge === 'truncate', req.abort);
    try {
      dispatcher.dispatch({ origin: req.origin, path: req.path, method: req.method, headers: req.headers, body: req.body ?? null }, handler as unknown as Dispatcher.DispatchHandler);
    } catch (err) {
      handler.fail(err);
    }
  });
}

/** undici's classic handler interface (the one its HTTP/1.1 client calls without an adapter). */
class ExchangeHandler {
  private status = 0;
  private rawHeaders: (Buffer | string)[] | undefined = undefined;
  private chunks: Buffer[] | undefined = undefined;
  private kept = 0;
  private read = 0;
  private truncated = false;
  private settled = false;
  private abortFn: ((reason?: Error) => void) | undefined = undefined;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    private readonly resolve: (x: Exchange) => void,
    private readonly reject: (err: unknown) => void,
    private readonly keepBytes: number,
    private readonly maxBytes: number,
    private readonly truncateLarge: boolean,
    private readonly signal: AttemptAbort | undefined,
  ) {
    if (signal) {
      this.onAbort = () => {
        const reason = signal.reason as Error;
        if (this.abortFn) this.abortFn(reason);
        else this.fail(reason);
      };
      signal.on('abort', this.onAbort);
    }
  }

  onConnect(abort: (reason?: Error) => void): void {
    if (this.settled) {
      abort(new Error('request already settled'));
      return;
    }
    if (this.signal?.aborted) {
      abort(this.signal.reason as Error);
      return;
    }
    this.abortFn = abort;
  }

  onHeaders(statusCode: number, rawHeaders: (Buffer | string)[]): boolean {
    if (statusCode < 200) return true; // 1xx: the answer is still to come
    this.status = statusCode;
    this.rawHeaders = rawHeaders;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.read += chunk.length;
    if (this.read > this.maxBytes) {
      if (this.truncateLarge) {
        this.truncated = true;
        this.finish();
      } else {
        this.fail(new ResponseTooLargeError(this.maxBytes));
      }
      this.abortFn?.(new Error('answer too large'));
      return false;
    }
    const room = this.keepBytes - this.kept;
    if (room > 0) {
      const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
      (this.chunks ??= []).push(part);
      this.kept += part.length;
      if (part !== chunk) this.truncated = true;
    } else if (chunk.length > 0) {
      this.truncated = true;
    }
    return true;
  }

  onComplete(): void {
    this.finish();
  }

  onError(err: Error): void {
    this.fail(err);
  }

  onUpgrade(): void {
    this.fail(new Error('unexpected protocol upgrade'));
  }

  fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.release();
    this.reject(err);
  }

  private finish(): void {
    if (this.settled) return;
    this.settled = true;
    this.release();
    const chunks = this.chunks;
    let text = '';
    if (chunks !== undefined) {
      const buf = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, this.kept);
      // a UTF-8 byte order mark is not part of the text (as undici's body.text() drops it)
      text = buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? buf.toString('utf8', 3) : buf.toString('utf8');
    }
    this.resolve({ statusCode: this.status, headers: parseRawHeaders(this.rawHeaders), text, truncated: this.truncated });
  }

  private release(): void {
    if (this.signal && this.onAbort) this.signal.removeListener('abort', this.onAbort);
  }
}

/** Raw header pairs as an object: lower-case names, a repeated header as an array of its values. */
export function parseRawHeaders(raw: readonly (Buffer | string)[] | undefined): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  if (raw === undefined) return out;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i] as Buffer | string;
    const v = raw[i + 1] as Buffer | string;
    const name = (typeof n === 'string' ? n : n.toString('latin1')).toLowerCase();
    const value = typeof v === 'string' ? v : v.toString('latin1');
    // an answer's header names are data: none may reach Object.prototype
    if (name === '__proto__') continue;
    const prev = Object.hasOwn(out, name) ? out[name] : undefined;
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  return out;
}
