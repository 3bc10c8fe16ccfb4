import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, type Dispatcher } from 'undici';

/** A request as the test server saw it. */
export interface SeenRequest {
  readonly at: number;
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

export type Handler = (req: SeenRequest, res: ServerResponse, n: number) => void | Promise<void>;

/**
 * A real local HTTP server for tests, bound to loopback on a free port. It records every
 * request (time, method, URL, headers, body) so tests can count requests per window.
 */
export class TestServer {
  readonly requests: SeenRequest[] = [];
  private server: Server | undefined;
  url = '';

  constructor(private handler: Handler) {}

  setHandler(h: Handler): void {
    this.handler = h;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const at = Date.now();
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const seen: SeenRequest = { at, method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
        this.requests.push(seen);
        Promise.resolve(this.handler(seen, res, this.requests.length)).catch((err: unknown) => {
          res.statusCode = 500;
          res.end(String(err));
        });
      });
    });
    this.server.keepAliveTimeout = 5000;
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  /** The most requests seen in any window of `ms` (sliding over arrival times). */
  maxInWindow(ms: number, filter: (r: SeenRequest) => boolean = () => true): number {
    return maxInWindow(
      this.requests.filter(filter).map((r) => r.at),
      ms,
    );
  }
}

/**
 * The largest amount by which arrivals exceed a token bucket that starts full at `startMs`:
 * by any arrival time t, at most `burst + count · (t − start) / perMs` requests can have
 * arrived (one more per clock tick of rounding). A rate limiter that holds gives ≤ 0 however
 * loaded the machine is: delays in transit only make requests arrive later.
 */
export function tokenBucketExcess(times: readonly number[], startMs: number, limit: { count: number; perMs: number; burst?: number }): number {
  const sorted = [...times].sort((a, b) => a - b);
  let worst = Number.NEGATIVE_INFINITY;
  sorted.forEach((t, i) => {
    const allowed = (limit.burst ?? 1) + (limit.count * (t - startMs + 1)) / limit.perMs;
    worst = Math.max(worst, i + 1 - allowed);
  });
  return worst;
}

/** A keep-alive Agent that records when each request leaves this process (for rate tests). */
export class RecordingAgent extends Agent {
  readonly sent: number[] = [];
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    this.sent.push(Date.now());
    return super.dispatch(options, handler);
  }
}

function maxInWindow(unsorted: readonly number[], ms: number): number {
  const times = [...unsorted].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < times.length; hi++) {
    while ((times[hi] as number) - (times[lo] as number) >= ms) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}
