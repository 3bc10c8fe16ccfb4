import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchange, parseRawHeaders, ResponseTooLargeError } from './exchange.js';
import { AttemptAbort, Deadlines } from './timeout.js';

let server: Server;
let origin: string;
/** Answers every connection with one fixed raw HTTP/1.1 response (headers no http.Server would write). */
let raw: TcpServer;
let rawOrigin: string;
const sockets = new Set<string>();
const agent = new Agent({ connections: 1, keepAliveTimeout: 10_000 });

beforeAll(async () => {
  server = createServer((req, res) => {
    sockets.add(`${req.socket.remotePort}`);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      switch (req.url) {
        case '/echo':
          res.writeHead(201, { 'content-type': 'application/json', 'x-seen': body.length });
          res.end(JSON.stringify({ method: req.method, body, sig: req.headers['x-sig'] }));
          return;
        case '/hints':
          res.writeEarlyHints({ link: '</style.css>; rel=preload' });
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('after hints');
          return;
        case '/bom':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"ü":1}')]));
          return;
        case '/big':
          res.writeHead(200, { 'content-type': 'text/plain' });
          // 4 chunks of 64 KiB
          for (let i = 0; i < 4; i++) res.write(Buffer.alloc(65536, 97 + i));
          res.end();
          return;
        case '/slow':
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('first part ');
          setTimeout(() => res.end('late'), 2000).unref();
          return;
        case '/reset':
          req.socket.destroy();
          return;
        default:
          res.writeHead(404);
          res.end();
      }
    });
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  raw = createTcpServer((socket) => {
    socket.once('data', () => {
      socket.end(
        'HTTP/1.1 200 OK\r\nX-Dup: one\r\nX-Dup: two\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n__proto__: polluted\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok',
      );
    });
  });
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
  rawOrigin = `http://127.0.0.1:${(raw.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await agent.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await new Promise((resolve) => raw.close(resolve));
});

describe('exchange', () => {
  it('sends method, headers and body and answers with status, lower-case headers and the body text', async () => {
    const res = await exchange(agent, { origin, path: '/echo', method: 'PUT', headers: { 'x-sig': 's1' }, body: 'héllo' });
    expect(res.statusCode).toBe(201);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['x-seen']).toBe('5');
    expect(JSON.parse(res.text)).toEqual({ method: 'PUT', body: 'héllo', sig: 's1' });
    expect(res.truncated).toBe(false);
  });

  it('skips a 1xx answer and reads the final one', async () => {
    const res = await exchange(agent, { origin, path: '/hints', method: 'GET', headers: {} });
    expect(res.statusCode).toBe(200);
    expect(res.text).toBe('after hints');
    expect(res.headers['link']).toBeUndefined();
  });

  it('gives repeated headers as arrays and never lets a header name reach the prototype', async () => {
    const res = await exchange(agent, { origin: rawOrigin, path: '/repeat', method: 'GET', headers: {} });
    expect(res.text).toBe('ok');
    expect(res.headers['x-dup']).toEqual(['one', 'two']);
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(Object.getPrototypeOf(res.headers)).toBe(Object.prototype);
    expect(Object.hasOwn(res.headers, '__proto__')).toBe(false);
    expect(parseRawHeaders(['A', '1', 'a', '2', 'B', '3'])).toEqual({ a: ['1', '2'], b: '3' });
  });

  it('drops a UTF-8 byte order mark from the text', async () => {
    const res = await exchange(agent, { origin, path: '/bom', method: 'GET', headers: {} });
    expect(JSON.parse(res.text)).toEqual({ ü: 1 });
  });

  it('keeps the first keepBytes, reads the rest and reuses the connection', async () => {
    sockets.clear();
    const res = await exchange(agent, { origin, path: '/big', method: 'GET', headers: {}, keepBytes: 10 });
    expect(res.text).toBe('aaaaaaaaaa');
    expect(res.truncated).toBe(true);
    const again = await exchange(agent, { origin, path: '/echo', method: 'POST', headers: {}, body: 'x' });
    expect(again.statusCode).toBe(201);
    expect(sockets.size).toBe(1); // one connection served both
  });

  it('past maxBytes fails with IX_RESPONSE_TOO_LARGE, or answers with what it kept when told to truncate', async () => {
    const err = await exchange(agent, { origin, path: '/big', method: 'GET', headers: {}, maxBytes: 100_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResponseTooLargeError);
    expect((err as ResponseTooLargeError).code).toBe('IX_RESPONSE_TOO_LARGE');
    const res = await exchange(agent, { origin, path: '/big', method: 'GET', headers: {}, keepBytes: 4, maxBytes: 100_000, tooLarge: 'truncate' });
    expect(res).toMatchObject({ statusCode: 200, text: 'aaaa', truncated: true });
    // the agent still works after the connection it gave up
    expect((await exchange(agent, { origin, path: '/echo', method: 'POST', headers: {}, body: 'y' })).statusCode).toBe(201);
  });

  it('rejects with the reason when aborted mid-body, and at once when aborted before it starts', async () => {
    const deadlines = new Deadlines(150);
    const a = deadlines.start();
    const started = Date.now();
    const err = await exchange(agent, { origin, path: '/slow', method: 'GET', headers: {}, abort: a }).catch((e: unknown) => e);
    deadlines.finish(a);
    expect(a.timedOut).toBe(true);
    expect((err as Error).name).toBe('TimeoutError');
    expect(Date.now() - started).toBeLessThan(1500);

    const pre = new AttemptAbort();
    pre.abort(new Error('stopping'));
    await expect(exchange(agent, { origin, path: '/echo', method: 'POST', headers: {}, abort: pre })).rejects.toThrow('stopping');
  });

  it('rejects on a reset connection with undici’s error code and leaves no abort listener behind', async () => {
    const a = new AttemptAbort();
    const err = (await exchange(agent, { origin, path: '/reset', method: 'GET', headers: {}, abort: a }).catch((e: unknown) => e)) as { code?: string };
    expect(err.code).toMatch(/^UND_ERR_SOCKET|ECONNRESET$/);
    expect((a as unknown as { listeners?: unknown[] }).listeners ?? []).toHaveLength(0);
    const ok = new AttemptAbort();
    await exchange(agent, { origin, path: '/echo', method: 'POST', headers: {}, body: 'z', abort: ok });
    expect((ok as unknown as { listeners?: unknown[] }).listeners ?? []).toHaveLength(0);
  });
});
