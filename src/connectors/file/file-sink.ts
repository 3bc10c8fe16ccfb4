import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { Sink } from '../../core/component.js';
import type { Message } from '../../core/message.js';
import { defineSink } from '../../registry/registry.js';
import { csvRow } from './csv.js';

export const fileSinkConfig = Type.Object(
  {
    path: Type.String({ description: 'The file to write, relative to the spec. Its folder is created.' }),
    format: Type.Optional(
      Type.Union([Type.Literal('jsonl'), Type.Literal('csv'), Type.Literal('lines')], {
        description: 'jsonl: each payload as one JSON line; csv: object payloads as rows; lines: each payload as text. Default: by the file extension.',
      }),
    ),
    sync: Type.Union([Type.Literal('batch'), Type.Literal('none')], {
      default: 'batch',
      description: 'batch: fsync before acknowledging (group commit across concurrent batches), so acknowledged records survive a power loss; none: acknowledge once the OS has the bytes (survives a process crash only).',
    }),
    csv: Type.Optional(
      Type.Object(
        {
          delimiter: Type.String({ default: ',', minLength: 1, maxLength: 1 }),
          columns: Type.Optional(Type.Array(Type.String(), { description: 'Columns, in order. Default: the keys of the first record.' })),
          header: Type.Boolean({ default: true, description: 'Write a header row into an empty file.' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

type FileSinkConfig = Static<typeof fileSinkConfig>;

/**
 * Appends records to a file. Writes are serialized in arrival order; a write is acknowledged
 * once written (and fsynced with `sync: batch`). On open, a torn last line left by a crash is
 * cut off: its record was never acknowledged and will be delivered again.
 */
export class FileSink implements Sink {
  private readonly path: string;
  private readonly format: 'jsonl' | 'csv' | 'lines';
  private handle: FileHandle | undefined;
  private opening: Promise<FileHandle> | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private columns: string[] | undefined;
  private empty = false;
  private syncing: Promise<void> | undefined;
  private syncAgain: Promise<void> | undefined;

  constructor(
    private readonly config: FileSinkConfig,
    baseDir: string,
  ) {
    this.path = resolve(baseDir, config.path);
    this.format = config.format ?? (/\.csv$/i.test(this.path) ? 'csv' : /\.(txt|log)$/i.test(this.path) ? 'lines' : 'jsonl');
    this.columns = config.csv?.columns;
  }

  async write(batch: Message[]): Promise<void> {
    const handle = await this.open();
    const text = this.serialize(batch);
    const bytes = typeof text === 'string' ? Buffer.from(text) : text;
    const write = this.chain.then(() => writeAll(handle, bytes));
    this.chain = write.catch(() => undefined);
    await write;
    if (this.config.sync !== 'none') await this.sync(handle);
  }

  async close(): Promise<void> {
    await this.chain;
    const h = this.handle;
    this.handle = undefined;
    if (h) {
      if (this.config.sync !== 'none') await h.sync().catch(() => undefined);
      await h.close();
    }
  }

  private serialize(batch: Message[]): string | Buffer {
    if (this.format === 'jsonl') return lines(batch, (p) => String(JSON.stringify(p)));
    if (this.format === 'lines') return lines(batch, (p) => (typeof p === 'string' ? p : String(JSON.stringify(p))));
    let out = '';
    const delimiter = this.config.csv?.delimiter ?? ',';
    for (const m of batch) {
      const rec = (m.payload ?? {}) as Record<string, unknown>;
      if (!this.columns) this.columns = Object.keys(rec);
      if (this.empty && (this.config.csv?.header ?? true)) {
        out += csvRow(this.columns, delimiter);
        this.empty = false;
      }
      out += csvRow(
        this.columns.map((c) => rec[c]),
        delimiter,
      );
    }
    return out;
  }

  /** Group commit: concurrent writers share one fsync; a writer never waits on an fsync that began before its write. */
  private sync(handle: FileHandle): Promise<void> {
    if (!this.syncing) {
      this.syncing = handle.sync().finally(() => {
        this.syncing = undefined;
      });
      return this.syncing;
    }
    if (!this.syncAgain) {
      this.syncAgain = this.syncing
        .catch(() => undefined)
        .then(() => {
          this.syncAgain = undefined;
          return this.sync(handle);
        });
    }
    return this.syncAgain;
  }

  private open(): Promise<FileHandle> {
    if (this.handle) return Promise.resolve(this.handle);
    this.opening ??= (async () => {
      await mkdir(dirname(this.path), { recursive: true });
      const h = await open(this.path, 'a+');
      const { size } = await h.stat();
      if (size > 0) await repairTail(h, size);
      this.empty = (await h.stat()).size === 0;
      this.handle = h;
      return h;
    })();
    return this.opening;
  }
}

/**
 * A batch as one line per payload, encoded straight into one buffer as each payload is
 * serialized: no string outlives its line (one big string per batch was a large old-space
 * string freed only by a full GC; an array of every line's string kept them all alive
 * next to the payloads).
 */
function lines(batch: Message[], text: (payload: unknown) => string): Buffer {
  let out = Buffer.allocUnsafe(Math.max(4096, batch.length * 512));
  let at = 0;
  for (const m of batch) {
    const s = text(m.payload);
    // UTF-8 takes at most 3 bytes per UTF-16 unit; +1 for the newline.
    if (at + s.length * 3 + 1 > out.length) {
      const need = at + Buffer.byteLength(s) + 1;
      if (need > out.length) {
        const grown = Buffer.allocUnsafe(Math.max(need, out.length * 2));
        out.copy(grown, 0, 0, at);
        out = grown;
      }
    }
    at += out.write(s, at);
    out[at++] = 10;
  }
  return out.subarray(0, at);
}

/** Writes every byte (a write may be partial). */
async function writeAll(h: FileHandle, bytes: Buffer): Promise<void> {
  let at = 0;
  while (at < bytes.length) {
    const { bytesWritten } = await h.write(bytes, at, bytes.length - at);
    at += bytesWritten;
  }
}

/** Cuts a partial last line (no newline at the end) left by a crash mid-write. */
async function repairTail(h: FileHandle, size: number): Promise<void> {
  const window = Math.min(size, 1 << 16);
  const buf = Buffer.alloc(window);
  await h.read(buf, 0, window, size - window);
  if (buf[window - 1] === 10) return;
  const nl = buf.lastIndexOf(10);
  const keep = nl === -1 ? (window === size ? 0 : size) : size - window + nl + 1;
  if (keep < size) await h.truncate(keep);
}

export const fileSink = defineSink({
  kind: 'file',
  summary: 'Appends records to a JSONL, CSV or text file; acknowledges once written (and fsynced).',
  description:
    'Concurrent batches share one fsync (group commit). After a crash, a torn last line is cut off when the file is opened again; its record is delivered again.',
  config: fileSinkConfig,
  examples: [{ title: 'JSON lines', yaml: 'path: ./out/orders.jsonl' }],
  create: (config, ctx) => new FileSink(config, ctx.baseDir),
});
