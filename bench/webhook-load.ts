/**
 * The load generator of `webhook-ingest`, run as a child process so that autocannon's own work
 * (signing every request, measuring latency) does not share the event loop of the server it
 * measures. Argument: JSON `{ url, seconds, connections, secret }`; prints one JSON line.
 */
import autocannon from 'autocannon';
import { Webhook } from 'standardwebhooks';

export interface LoadSpec {
  readonly url: string;
  readonly seconds: number;
  readonly connections: number;
  readonly secret: string;
}

export interface Load {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly requests: number;
}

async function main(spec: LoadSpec): Promise<Load> {
  const signer = new Webhook(spec.secret);
  let n = 0;
  const prefix = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const result = await autocannon({
    url: spec.url,
    connections: spec.connections,
    duration: spec.seconds,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => {
          const id = `evt_${prefix}_${n++}`;
          const body = JSON.stringify({ id, type: 'order.created', data: { order: n, total: 42.5, currency: 'EUR', customer: 'c-123' } });
          const now = new Date();
          return {
            ...req,
            body,
            headers: {
              'content-type': 'application/json',
              'webhook-id': id,
              'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
              'webhook-signature': signer.sign(id, now, body),
            },
          };
        },
      },
    ],
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    requests: result.requests.total,
  };
}

main(JSON.parse(process.argv[2] ?? '{}') as LoadSpec).then(
  (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
