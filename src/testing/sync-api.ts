import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ApiRecord {
  id: number;
  name: string;
  updated_at: string;
  deleted?: boolean;
  [k: string]: unknown;
}

/**
 * A local REST API of records for sync tests and benches: `GET /records?updated_since=&cursor=&limit=`
 * answers `{ data, next, total }` in (updated_at, id) order with keyset pagination. Records
 * live in a map (edit them between runs) or are generated from their index (`count`).
 */
export class RecordsApi {
  readonly records = new Map<number, ApiRecord>();
  private server: Server | undefined;
  requests = 0;
  /** Awaited before each answer (the request's number, from 1): lets a test hold the copy mid-way. */
  beforeAnswer: ((request: number) => Promise<void>) | undefined;
  /** Generated mode: records 1..count, `updated_at` one millisecond apart, built on demand. */
  count = 0;
  private readonly base = Date.parse('2026-01-01T00:00:00Z');

  generated(i: number): ApiRecord {
    return { id: i, name: `name ${i}`, updated_at: new Date(this.base + i).toISOString() };
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const n = ++this.requests;
      if (this.beforeAnswer) void this.beforeAnswer(n).then(() => this.answer(req.url, res));
      else this.answer(req.url, res);
    });
    await new Promise<void>((r) => (this.server as Server).listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private answer(url: string | undefined, res: ServerResponse): void {
    const u = new URL(url ?? '/', 'http://x');
    const limit = Math.min(5000, Number(u.searchParams.get('limit') ?? 1000));
    const cursor = u.searchParams.get('cursor');
    const since = u.searchParams.get('updated_since');
    let page: ApiRecord[];
    let total: number;
    if (this.count > 0) {
      const from = cursor ? Number(cursor) + 1 : since ? Math.max(1, Date.parse(since) - this.base + 1) : 1;
      page = [];
      for (let i = from; i <= this.count && page.length < limit; i++) page.push(this.generated(i));
      total = this.count;
    } else {
      const all = [...this.records.values()]
        .filter((r) => !since || r.updated_at > since)
        .sort((a, b) => (a.updated_at < b.updated_at ? -1 : a.updated_at > b.updated_at ? 1 : a.id - b.id));
      total = all.length;
      let start = 0;
      if (cursor) {
        const [at, id] = cursor.split('|');
        start = all.findIndex((r) => r.updated_at > (at as string) || (r.updated_at === at && r.id > Number(id)));
        if (start < 0) start = all.length;
      }
      page = all.slice(start, start + limit);
    }
    const last = page[page.length - 1];
    const next = page.length < limit || !last ? null : this.count > 0 ? String(last.id) : `${last.updated_at}|${last.id}`;
    const body = JSON.stringify({ data: page, next, total });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** Inserts or updates a record, stamping `updated_at` later than every existing one. */
  put(id: number, fields: Partial<ApiRecord> = {}): ApiRecord {
    const prev = this.records.get(id);
    const latest = Math.max(this.base, ...[...this.records.values()].map((r) => Date.parse(r.updated_at)));
    const rec: ApiRecord = { ...(prev ?? { id, name: `name ${id}` }), ...fields, id, updated_at: new Date(latest + 1000).toISOString() };
    this.records.set(id, rec);
    return rec;
  }
}
