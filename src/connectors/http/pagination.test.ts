import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/clock.js';
import { IxError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import { RestService } from './client.js';
import type { EndpointConfig, ServiceConfig } from './config.js';
import { nextLink, paginate } from './pagination.js';
import { json, TestServer } from './test-server.js';

const ITEMS = Array.from({ length: 11 }, (_v, i) => ({ id: i + 1 }));

let server: TestServer;
let other: TestServer | undefined;
let svc: RestService | undefined;
beforeEach(async () => {
  server = await new TestServer((_r, res) => json(res, 200, [])).start();
});
afterEach(async () => {
  await svc?.close();
  await other?.stop();
  svc = undefined;
  other = undefined;
  await server.stop();
});

function service(endpoint: EndpointConfig): RestService {
  return new RestService(
    'pages',
    { type: 'rest', baseUrl: server.url, timeout: '2s', connectTimeout: '1s', maxConcurrent: 4, connections: 2, endpoints: { list: endpoint } } as ServiceConfig,
    { clock: systemClock, logger: silentLogger, baseDir: '.' },
  );
}

async function walk(s: RestService): Promise<{ ids: number[]; pages: number }> {
  const ids: number[] = [];
  let pages = 0;
  for await (const page of paginate(s, s.endpoint('list'), {})) {
    pages++;
    ids.push(...page.items.map((i) => (i as { id: number }).id));
  }
  return { ids, pages };
}

const query = (url: string): URLSearchParams => new URL(url, 'http://x').searchParams;

describe('pagination', () => {
  it('offset/limit: stops on a short page', async () => {
    server.setHandler((r, res) => {
      const q = query(r.url);
      const offset = Number(q.get('offset'));
      json(res, 200, { data: ITEMS.slice(offset, offset + Number(q.get('limit'))) });
    });
    svc = service({ method: 'GET', path: '/items', paginate: { type: 'offset', limit: 4, items: '$.data' } });
    expect(await walk(svc)).toEqual({ ids: ITEMS.map((i) => i.id), pages: 3 });
    expect(server.requests.map((r) => query(r.url).get('offset'))).toEqual(['0', '4', '8']);
  });

  it('offset/limit: stops at the total the API reports, and on an empty page', async () => {
    server.setHandler((r, res) => {
      const offset = Number(query(r.url).get('offset'));
      json(res, 200, { total: 8, data: ITEMS.slice(offset, offset + 4) });
    });
    svc = service({ method: 'GET', path: '/items', paginate: { type: 'offset', limit: 4, items: '$.data', total: '$.total' } });
    expect((await walk(svc)).pages).toBe(2);
    server.setHandler((_r, res) => json(res, 200, { data: [] }));
    svc = service({ method: 'GET', path: '/items', paginate: { type: 'offset', limit: 4, items: '$.data' } });
    expect(await walk(svc)).toEqual({ ids: [], pages: 1 });
  });

  it('page number: from `start`, with a page size, until totalPages', async () => {
    server.setHandler((r, res) => {
      const q = query(r.url);
      const page = Number(q.get('p'));
      const size = Number(q.get('per_page'));
      json(res, 200, { pages: Math.ceil(ITEMS.length / size), results: ITEMS.slice(page * size, page * size + size) });
    });
    svc = service({ method: 'GET', path: '/items', paginate: { type: 'page', param: 'p', start: 0, sizeParam: 'per_page', size: 5, items: '$.results', totalPages: '$.pages' } });
    // pages 0, 1, 2 hold 5, 5, 1 items; page 2 is short
    expect(await walk(svc)).toEqual({ ids: ITEMS.map((i) => i.id), pages: 3 });
  });

  it('RFC 8288 Link headers: follows rel="next" and stops when it is missing', async () => {
    server.setHandler((r, res) => {
      const page = Number(query(r.url).get('page') ?? '1');
      const links = [`<${server.url}/items?page=1>; rel="first"`];
      if (page < 3) links.push(`</items?page=${page + 1}>; rel="next"`);
      json(res, 200, ITEMS.slice((page - 1) * 4, page * 4), { link: links.join(', ') });
    });
    svc = service({ method: 'GET', path: '/items', paginate: { type: 'link' } });
    expect(await walk(svc)).toEqual({ ids: ITEMS.map((i) => i.id), pages: 3 });
    expect(nextLink('<https://a.example/x?page=2>; rel="prev next", <https://a.example/x?page=9>; rel=last', 'https://a.example/')).toBe('https://a.example/x?page=2');
  });

  it('stops safely when the server repeats a cursor or a link instead of looping', async () => {
    server.setHandler((_r, res) => json(res, 200, { items: [{ id: 1 }], next: 'same' }));
    svc = service({ method: 'GET', path: '/items', paginate: { type: 'cursor', next: '$.next', items: '$.items' } });
    expect((await walk(svc)).pages).toBe(2);
    await svc.close();
    server.setHandler((_r, res) => json(res, 200, [{ id: 1 }], { link: '</items?page=2>; rel="next"' }));
    svc = service({ method: 'GET', path: '/items', paginate: { type: 'link' } });
    expect((await walk(svc)).pages).toBe(2);
  });

  it('refuses a next link to another origin: credentials stay with the service', async () => {
    other = await new TestServer((_r, res) => json(res, 200, [{ id: 99 }])).start();
    server.setHandler((_r, res) => json(res, 200, [{ id: 1 }], { link: `<${other?.url ?? ''}/steal>; rel="next"` }));
    svc = new RestService(
      'pages',
      {
        type: 'rest',
        baseUrl: server.url,
        auth: { type: 'bearer', token: 'secret-token' },
        timeout: '2s',
        connectTimeout: '1s',
        maxConcurrent: 4,
        connections: 2,
        endpoints: { list: { method: 'GET', path: '/items', paginate: { type: 'link' } } },
      } as ServiceConfig,
      { clock: systemClock, logger: silentLogger, baseDir: '.' },
    );
    let err: unknown;
    try {
      await walk(svc);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IxError);
    expect((err as IxError).message).toMatch(/not the service's origin/);
    expect(other.requests).toHaveLength(0);
  });
});
