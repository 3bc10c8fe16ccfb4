import { execFileSync } from 'node:child_process';
import { createHmac, generateKeyPairSync, verify } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/clock.js';
import { IxError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import type { OAuth2Auth } from './auth.js';
import { RestService } from './client.js';
import type { ServiceConfig } from './config.js';
import { FakeClock } from '../../testing/fake-clock.js';
import { json, TestServer } from './test-server.js';

const servers: TestServer[] = [];
const services: RestService[] = [];
afterEach(async () => {
  await Promise.all(services.splice(0).map((s) => s.close()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function start(h: ConstructorParameters<typeof TestServer>[0]): Promise<TestServer> {
  const s = await new TestServer(h).start();
  servers.push(s);
  return s;
}

function svc(cfg: Partial<ServiceConfig> & { baseUrl: string }): RestService {
  const s = new RestService(
    'api',
    { type: 'rest', timeout: '2s', connectTimeout: '1s', maxConcurrent: 64, connections: 16, retry: { attempts: 3, backoff: 'fixed', initial: '1ms', max: '1ms', jitter: false }, endpoints: { get: { method: 'GET', path: '/r' }, post: { method: 'POST', path: '/r' } }, ...cfg } as ServiceConfig,
    { clock: systemClock, logger: silentLogger, baseDir: '.' },
  );
  services.push(s);
  return s;
}

function b64json(part: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('OAuth 2.0 client credentials against a local token server', () => {
  it('caches the token, fetches it once for many concurrent calls, renews it before expiry and once on 401', async () => {
    let issued = 0;
    const valid = new Set<string>();
    const token = await start((r, res) => {
      const form = new URLSearchParams(r.body);
      const basic = Buffer.from(String(r.headers.authorization).replace('Basic ', ''), 'base64').toString();
      if (form.get('grant_type') !== 'client_credentials' || basic !== 'client-1:s3cret' || form.get('scope') !== 'read') {
        json(res, 401, { error: 'invalid_client' });
        return;
      }
      issued++;
      const t = `tok-${issued}`;
      valid.add(t);
      setTimeout(() => json(res, 200, { access_token: t, token_type: 'bearer', expires_in: 1 }), 30);
    });
    const api = await start((r, res) => {
      const t = String(r.headers.authorization ?? '').replace('Bearer ', '');
      if (!valid.has(t)) json(res, 401, { error: 'expired' });
      else json(res, 200, { t });
    });
    const s = svc({
      baseUrl: api.url,
      auth: { type: 'oauth2', grant: 'client-credentials', tokenUrl: `${token.url}/token`, clientId: 'client-1', clientSecret: 's3cret', scope: 'read', clientAuth: 'basic', refreshBefore: '200ms' },
    });
    const first = await Promise.all(Array.from({ length: 20 }, () => s.call('get')));
    expect(first.every((r) => (r.body as { t: string }).t === 'tok-1')).toBe(true);
    expect(issued).toBe(1);
    // the token lives 1 s; renewed 200 ms before expiry, so after 850 ms the next call renews it
    await new Promise((r) => setTimeout(r, 850));
    const second = await Promise.all(Array.from({ length: 10 }, () => s.call('get')));
    expect(second.every((r) => (r.body as { t: string }).t === 'tok-2')).toBe(true);
    expect(issued).toBe(2);
    // the server revokes the token: each waiting call sees 401, one refresh happens, all succeed
    valid.clear();
    const third = await Promise.all(Array.from({ length: 10 }, () => s.call('get')));
    expect(third.every((r) => (r.body as { t: string }).t === 'tok-3')).toBe(true);
    expect(issued).toBe(3);
    expect((s.auth as OAuth2Auth).tokenRequests).toBe(3);
  });

  it('dead-letters when the API refuses even a fresh token, and never puts the secret in the error', async () => {
    const token = await start((_r, res) => json(res, 200, { access_token: 'tok', expires_in: 3600 }));
    const api = await start((_r, res) => json(res, 401, { error: 'nope' }));
    const s = svc({ baseUrl: api.url, auth: { type: 'oauth2', grant: 'client-credentials', tokenUrl: token.url, clientId: 'c', clientSecret: 'TOPSECRET', clientAuth: 'body', refreshBefore: '30s' } });
    const err = await s.call('get').catch((e: unknown) => e as IxError);
    expect(err).toBeInstanceOf(IxError);
    expect((err as IxError).retryable).toBe(false);
    expect((err as IxError).message).toContain('401');
    expect((err as IxError).message).toContain('still refused after renewing credentials');
    expect(api.requests).toHaveLength(2);
    expect(token.requests).toHaveLength(2);
    expect(new URLSearchParams(token.requests[0]?.body).get('client_secret')).toBe('TOPSECRET');
    expect(JSON.stringify(err) + String(err)).not.toContain('TOPSECRET');
  });

  it('reports a failing token endpoint with its OAuth error code only', async () => {
    const token = await start((_r, res) => json(res, 400, { error: 'invalid_grant', error_description: 'refresh token abc123 revoked' }));
    const api = await start((_r, res) => json(res, 200, {}));
    const s = svc({ baseUrl: api.url, auth: { type: 'oauth2', grant: 'refresh-token', tokenUrl: token.url, clientId: 'c', refreshToken: 'abc123', clientAuth: 'body', refreshBefore: '30s' } });
    const err = (await s.call('get').catch((e: unknown) => e)) as IxError;
    expect(err.code).toBe('IX_SERVICE_AUTH');
    expect(err.message).toContain('invalid_grant');
    expect(err.message).not.toContain('abc123');
    expect(new URLSearchParams(token.requests[0]?.body).get('grant_type')).toBe('refresh_token');
    expect(api.requests).toHaveLength(0);
  });
});

describe('the shared token request: its own deadline, each waiter its own signal', () => {
  const until = async (cond: () => boolean, ms = 20_000): Promise<void> => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  it('gives up on a token endpoint that never answers after the service timeout, even when the caller has a signal', async () => {
    const token = await start(() => undefined); // reads the request, never answers
    const api = await start((_r, res) => json(res, 200, {}));
    const s = svc({ baseUrl: api.url, timeout: '400ms', auth: { type: 'oauth2', grant: 'client-credentials', tokenUrl: token.url, clientId: 'c', clientSecret: 's', clientAuth: 'body', refreshBefore: '30s' } });
    const caller = new AbortController(); // never aborted: before, its presence removed the deadline
    const err = (await s.call('get', { signal: caller.signal }).catch((e: unknown) => e)) as IxError;
    expect(err).toBeInstanceOf(IxError);
    expect(err.code).toBe('IX_SERVICE_AUTH');
    expect(err.message).toContain('token endpoint did not answer within 400ms');
    expect(token.requests).toHaveLength(1);
    expect(api.requests).toHaveLength(0);
  }, 30_000);

  it('lets the first caller abandon its wait while the others get the token from the same request', async () => {
    let release: (() => void) | undefined;
    const token = await start((_r, res) => {
      release = () => json(res, 200, { access_token: 'tok-shared', expires_in: 3600 });
    });
    const api = await start((r, res) => json(res, 200, { auth: r.headers.authorization }));
    const s = svc({ baseUrl: api.url, timeout: '20s', auth: { type: 'oauth2', grant: 'client-credentials', tokenUrl: token.url, clientId: 'c', clientSecret: 's', clientAuth: 'body', refreshBefore: '30s' } });
    const first = new AbortController();
    const second = new AbortController();
    const a = s.call('get', { signal: first.signal }).then(() => 'resolved', (e: unknown) => e);
    await until(() => token.requests.length === 1 && release !== undefined);
    const b = s.call('get', { signal: second.signal });
    const c = s.call('get');
    first.abort(new Error('first caller gave up'));
    expect(((await a) as Error).message).toBe('first caller gave up');
    release?.();
    const [rb, rc] = await Promise.all([b, c]);
    expect((rb.body as { auth: string }).auth).toBe('Bearer tok-shared');
    expect((rc.body as { auth: string }).auth).toBe('Bearer tok-shared');
    expect(token.requests).toHaveLength(1);
    expect((s.auth as OAuth2Auth).tokenRequests).toBe(1);
    expect(api.requests).toHaveLength(2); // the caller that gave up sent nothing
  }, 30_000);
});

describe('a token endpoint that expires tokens quickly', () => {
  it('renews once per rejected token however many calls see the 401, and every call succeeds', async () => {
    let issued = 0;
    const uses = new Map<string, number>();
    const rejected = new Set<string>();
    const token = await start((_r, res) => {
      issued++;
      uses.set(`tok-${issued}`, 0);
      json(res, 200, { access_token: `tok-${issued}`, token_type: 'Bearer', expires_in: 3600 });
    });
    // the API honours each token for 8 requests only, whatever it announced
    const api = await start((r, res) => {
      const t = String(r.headers.authorization ?? '').replace('Bearer ', '');
      const n = uses.get(t);
      if (n === undefined || n >= 8) {
        rejected.add(t);
        json(res, 401, { error: 'token expired' });
        return;
      }
      uses.set(t, n + 1);
      json(res, 200, { t });
    });
    const s = svc({ baseUrl: api.url, maxConcurrent: 4, auth: { type: 'oauth2', grant: 'client-credentials', tokenUrl: token.url, clientId: 'c', clientSecret: 's', clientAuth: 'body', refreshBefore: '30s' } });
    // four callers, ten calls each
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 10; i++) statuses.push((await s.call('get')).status);
      }),
    );
    expect(statuses).toEqual(Array.from({ length: 40 }, () => 200));
    expect(issued).toBeGreaterThanOrEqual(5); // 40 calls, 8 per token
    expect(issued).toBe(1 + rejected.size); // one renewal per rejected token, never one per waiting call
    expect((s.auth as OAuth2Auth).tokenRequests).toBe(issued);
  });

  it('uses and rotates refresh tokens, renewing ahead of the announced expiry on the injected clock', async () => {
    const clock = new FakeClock(Date.now());
    let refresh = 'r0';
    let issued = 0;
    const token = await start((r, res) => {
      const form = new URLSearchParams(r.body);
      if (form.get('grant_type') !== 'refresh_token' || form.get('refresh_token') !== refresh) {
        json(res, 400, { error: 'invalid_grant' });
        return;
      }
      issued++;
      refresh = `r${issued}`; // each refresh token works once
      json(res, 200, { access_token: `tok-${issued}`, expires_in: 60, refresh_token: refresh });
    });
    const api = await start((r, res) => json(res, 200, { t: String(r.headers.authorization) }));
    const s = new RestService(
      'api',
      { type: 'rest', baseUrl: api.url, timeout: '2s', connectTimeout: '1s', maxConcurrent: 8, connections: 4, endpoints: { get: { method: 'GET', path: '/r' } },
        auth: { type: 'oauth2', grant: 'refresh-token', tokenUrl: token.url, clientId: 'c', refreshToken: 'r0', clientAuth: 'body', refreshBefore: '10s' } } as ServiceConfig,
      { clock, logger: silentLogger, baseDir: '.' },
    );
    services.push(s);
    expect((await s.call('get')).body).toEqual({ t: 'Bearer tok-1' });
    clock.set(clock.now() + 45_000); // 15 s left: not yet within refreshBefore
    expect((await s.call('get')).body).toEqual({ t: 'Bearer tok-1' });
    clock.set(clock.now() + 6_000); // 9 s left: renew with the rotated refresh token
    expect((await s.call('get')).body).toEqual({ t: 'Bearer tok-2' });
    expect(token.requests.map((r) => new URLSearchParams(r.body).get('refresh_token'))).toEqual(['r0', 'r1']);
  });
});

describe('static credentials and signing', () => {
  it('sends API keys in a header or the query, Basic and Bearer', async () => {
    const api = await start((r, res) => json(res, 200, { url: r.url, key: r.headers['x-api-key'], auth: r.headers.authorization }));
    const h = (await svc({ baseUrl: api.url, auth: { type: 'api-key', key: 'K1', in: 'header', name: 'X-API-Key' } }).call('get')).body;
    const q = (await svc({ baseUrl: api.url, auth: { type: 'api-key', key: 'K2', in: 'query', name: 'api_key' } }).call('get')).body;
    const b = (await svc({ baseUrl: api.url, auth: { type: 'basic', username: 'u', password: 'p' } }).call('get')).body;
    const t = (await svc({ baseUrl: api.url, auth: { type: 'bearer', token: 'T' } }).call('get')).body;
    expect(h).toMatchObject({ key: 'K1', url: '/r' });
    expect(q).toMatchObject({ url: '/r?api_key=K2' });
    expect(b).toMatchObject({ auth: `Basic ${Buffer.from('u:p').toString('base64')}` });
    expect(t).toMatchObject({ auth: 'Bearer T' });
  });

  it.each(['HS256', 'RS256', 'ES256'] as const)('signs a JWT bearer with %s that the server verifies', async (alg) => {
    let key: string;
    let check: (data: string, sig: Buffer) => boolean;
    if (alg === 'HS256') {
      key = 'shared-secret';
      check = (data, sig) => createHmac('sha256', key).update(data).digest().equals(sig);
    } else {
      const pair = alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
      key = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      const pub = pair.publicKey;
      check = (data, sig) => verify('sha256', Buffer.from(data), alg === 'ES256' ? { key: pub, dsaEncoding: 'ieee-p1363' } : pub, sig);
    }
    const api = await start((r, res) => {
      const [h, p, s] = String(r.headers.authorization).replace('Bearer ', '').split('.') as [string, string, string];
      json(res, check(`${h}.${p}`, Buffer.from(s, 'base64url')) ? 200 : 401, { header: b64json(h), payload: b64json(p) });
    });
    const res = await svc({ baseUrl: api.url, auth: { type: 'jwt', algorithm: alg, key, issuer: 'ix', audience: 'api', ttl: '5m', header: 'Authorization', keyId: 'k1' } }).call('get');
    expect(res.status).toBe(200);
    const body = res.body as { header: Record<string, unknown>; payload: Record<string, number | string> };
    expect(body.header).toMatchObject({ alg, typ: 'JWT', kid: 'k1' });
    expect(body.payload).toMatchObject({ iss: 'ix', aud: 'api' });
    expect(Number(body.payload['exp']) - Number(body.payload['iat'])).toBe(300);
  });

  it('signs requests with HMAC over timestamp, method, path and body', async () => {
    const api = await start((r, res) => {
      const ts = String(r.headers['x-timestamp']);
      const expected = createHmac('sha256', 'hk').update(`${ts}.${r.method}.${r.url}.${r.body}`).digest('hex');
      json(res, r.headers['x-signature'] === `sha256=${expected}` ? 200 : 401, {});
    });
    const s = svc({ baseUrl: api.url, auth: { type: 'hmac', secret: 'hk', algorithm: 'sha256', header: 'X-Signature', timestampHeader: 'X-Timestamp', encoding: 'hex', prefix: 'sha256=', payload: '{timestamp}.{method}.{path}.{body}' } });
    expect((await s.call('post', { body: { a: 1 }, query: { q: 'x' } })).status).toBe(200);
  });
});

let hasOpenssl = true;
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' });
} catch {
  hasOpenssl = false;
}

describe.skipIf(!hasOpenssl)('mTLS', () => {
  it('presents the client certificate and trusts the given CA', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-mtls-'));
    const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=ix-test-ca');
    for (const name of ['server', 'client']) {
      run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name === 'server' ? 'localhost' : 'ix-client'}`);
      const ext = join(dir, `${name}.ext`);
      execFileSync('sh', ['-c', `printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ${ext}`]);
      run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', ext);
    }
    const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
    const server = createServer({ key: read('server.key'), cert: read('server.pem'), ca: read('ca.pem'), requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const cert = (req.socket as TLSSocket).getPeerCertificate();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ cn: cert.subject?.CN }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const ok = svc({ baseUrl: url, tls: { cert: join(dir, 'client.pem'), key: join(dir, 'client.key'), ca: read('ca.pem'), rejectUnauthorized: true } });
      expect((await ok.call('get')).body).toEqual({ cn: 'ix-client' });
      const noCert = svc({ baseUrl: url, retry: { attempts: 1, backoff: 'fixed', initial: '1ms', max: '1ms', jitter: false }, tls: { ca: read('ca.pem'), rejectUnauthorized: true } });
      const err = (await noCert.call('get').catch((e: unknown) => e)) as IxError;
      expect(err.code).toBe('IX_SERVICE_NETWORK');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
