import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { parse as parseCsv } from 'csv-parse';
import { Checkpointer } from '../../core/checkpointer.js';
import type { Source, SourceContext } from '../../core/component.js';
import { IxError } from '../../core/errors.js';
import { createMessage, type Message } from '../../core/message.js';
import { defineSource } from '../../registry/registry.js';

export const fileSourceConfig = Type.Object(
  {
    path: Type.String({ description: 'The file to read, relative to the spec.' }),
    format: Type.Optional(
      Type.Union([Type.Literal('jsonl'), Type.Literal('csv'), Type.Literal('lines')], {
        description: 'jsonl: one JSON value per line; csv: rows as objects keyed by the header; lines: each line as a string. Default: by the file extension (.csv → csv, .txt/.log → lines, else jsonl).',
      }),
    ),
    csv: Type.Optional(
      Type.Object(
        {
          delimiter: Type.String({ default: ',', minLength: 1, maxLength: 1 }),
          header: Type.Boolean({ default: true, description: 'The first row names the columns.' }),
          columns: Type.Optional(Type.Array(Type.String(), { description: 'Column names when the file has no header row.' })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

type FileSourceConfig = Static<typeof fileSourceConfig>;

interface Position {
  /** Byte offset just after the last record covered. */
  offset: number;
  /** Line number of the last record covered. */
  line: number;
}

interface Saved extends Position {
  ino: number;
  columns?: string[];
}

function formatOf(config: FileSourceConfig, path: string): 'jsonl' | 'csv' | 'lines' {
  if (config.format) return config.format;
  if (/\.csv$/i.test(path)) return 'csv';
  if (/\.(txt|log)$/i.test(path)) return 'lines';
  return 'jsonl';
}

/** Why the input file cannot be read, or undefined when it can. */
async function inputProblem(path: string, configured: string): Promise<IxError | undefined> {
  try {
    const info = await stat(path);
    if (info.isDirectory()) return new IxError('IX_SPEC_INVALID', { path: configured, detail: 'is a directory, not a file' });
    return undefined;
  } catch {
    return new IxError('IX_SPEC_FILE_NOT_FOUND', { path: configured });
  }
}

/**
 * Streams a JSONL, CSV or text file in batches, so a file larger than memory works. The
 * position is checkpointed only after the sinks accepted every record before it; a restart
 * resumes there (at-least-once: a record may be delivered twice, never lost). A malformed
 * record goes to the DLQ with its line number and the flow goes on.
 */
export class FileSource implements Source {
  private readonly path: string;
  private readonly format: 'jsonl' | 'csv' | 'lines';
  private readonly name: string;

  constructor(
    private readonly config: FileSourceConfig,
    baseDir: string,
  ) {
    this.path = resolve(baseDir, config.path);
    this.format = formatOf(config, this.path);
    this.name = basename(this.path);
  }

  async run(ctx: SourceContext): Promise<void> {
    let info;
    try {
      info = await stat(this.path);
    } catch {
      throw new IxError('IX_SPEC_FILE_NOT_FOUND', { path: this.config.path });
    }
    const savedText = await ctx.checkpoint.get();
    let start: Saved = { ino: info.ino, offset: 0, line: 0 };
    if (savedText) {
      const saved = JSON.parse(savedText) as Saved;
      if (saved.ino === info.ino && saved.offset <= info.size) start = saved;
      else ctx.logger.warn({ path: this.config.path }, 'file changed since the last checkpoint; reading it from the start');
    }
    if (start.offset >= info.size) {
      ctx.logger.info({ path: this.config.path, line: start.line }, 'file already read to its end');
      return;
    }
    if (start.offset > 0) ctx.logger.info({ path: this.config.path, line: start.line }, 'resuming from checkpoint');
    const checkpointer = new Checkpointer<Saved>(ctx.checkpoint, (p) => JSON.stringify(p));
    try {
      if (this.format === 'csv') await this.readCsv(ctx, start, checkpointer);
      else await this.readLines(ctx, start, checkpointer);
    } finally {
      await checkpointer.flush();
    }
  }

  private async readLines(ctx: SourceContext, start: Saved, checkpointer: Checkpointer<Saved>): Promise<void> {
    const stream = createReadStream(this.path, { start: start.offset, highWaterMark: 1 << 20 });
    const batchSize = ctx.batchSize;
    const json = this.format === 'jsonl';
    const prefix = `${this.name}:`;
    let offset = start.offset;
    let line = start.line;
    let batch: Message[] = [];
    let carry: Buffer | undefined;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const b = batch;
      batch = [];
      const ack = await ctx.emit(b);
      checkpointer.track({ ino: start.ino, offset, line }, ack.settled);
      // Backpressure before parsing: the next batch is read only once the flow can take it.
      await ctx.room?.();
    };
    const record = (buf: Buffer, from: number, to: number): void => {
      line++;
      let end = to;
      if (end > from && buf[end - 1] === 13) end--; // CRLF
      if (end === from) return; // blank line
      const text = buf.toString('utf8', from, end);
      const id = prefix + line;
      if (!json) {
        batch.push(createMessage({ id, payload: text, meta: { line } }));
        return;
      }
      let payload: unknown;
      try {
        payload = JSON.parse(text);
      } catch (err) {
        const detail = (err as Error).message;
        batch.push(createMessage({ id, payload: text, meta: { line }, error: new IxError('IX_RECORD_INVALID_JSON', { line, detail }).message }));
        return;
      }
      batch.push(createMessage({ id, payload, meta: { line } }));
    };
    let consumed = start.offset; // file offset of the first byte not yet split into lines
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        if (ctx.signal.aborted) break;
        const buf: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
        const base = consumed;
        carry = undefined;
        let from = 0;
        let nl = buf.indexOf(10, from);
        while (nl !== -1) {
          record(buf, from, nl);
          from = nl + 1;
          if (batch.length >= batchSize) {
            offset = base + from;
            await flush();
            if (ctx.signal.aborted) break;
          }
          nl = buf.indexOf(10, from);
        }
        if (ctx.signal.aborted) break;
        offset = base + from;
        consumed = base + from;
        if (from < buf.length) carry = buf.subarray(from);
      }
      if (!ctx.signal.aborted && carry && carry.length > 0) {
        // The last line has no newline: it is a record all the same.
        record(carry, 0, carry.length);
        offset = consumed + carry.length;
        carry = undefined;
      }
      if (!ctx.signal.aborted) await flush();
    } finally {
      stream.destroy();
    }
  }

  private async readCsv(ctx: SourceContext, start: Saved, checkpointer: Checkpointer<Saved>): Promise<void> {
    const opts = this.config.csv ?? { delimiter: ',', header: true };
    const delimiter = opts.delimiter ?? ',';
    let columns: string[] | undefined = start.columns ?? opts.columns;
    const useHeader = (opts.header ?? true) && columns === undefined;
    const stream = createReadStream(this.path, { start: start.offset, highWaterMark: 1 << 20 });
    const parser = stream.pipe(
      parseCsv({ delimiter, relax_column_count: true, skip_empty_lines: true, info: true, skip_records_with_error: true, bom: start.offset === 0 }),
    );
    const prefix = `${this.name}:`;
    let batch: Message[] = [];
    let pos: Position = { offset: start.offset, line: start.line };
    const skipped: { line: number; detail: string }[] = [];
    parser.on('skip', (err: Error & { lines?: number }) => {
      skipped.push({ line: start.line + (err.lines ?? 0), detail: err.message });
    });
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const b = batch;
      batch = [];
      const ack = await ctx.emit(b);
      checkpointer.track({ ino: start.ino, ...pos, ...(columns ? { columns } : {}) }, ack.settled);
      await ctx.room?.();
    };
    try {
      for await (const item of parser as AsyncIterable<{ record: string[]; info: { bytes: number; lines: number } }>) {
        if (ctx.signal.aborted) break;
        const line = start.line + item.info.lines;
        for (const s of skipped.splice(0)) {
          batch.push(createMessage({ id: prefix + s.line, payload: null, meta: { line: s.line }, error: new IxError('IX_RECORD_CSV_SYNTAX', { line: s.line, detail: s.detail }).message }));
        }
        pos = { offset: start.offset + item.info.bytes, line };
        if (useHeader && columns === undefined) {
          columns = item.record;
          continue;
        }
        const cols = columns ?? item.record.map((_v, i) => `col${i + 1}`);
        if (item.record.length !== cols.length) {
          batch.push(
            createMessage({
              id: prefix + line,
              payload: item.record,
              meta: { line },
              error: new IxError('IX_RECORD_CSV_COLUMNS', { line, found: item.record.length, expected: cols.length }).message,
            }),
          );
        } else {
          const obj: Record<string, string> = {};
          for (let i = 0; i < cols.length; i++) obj[cols[i] as string] = item.record[i] as string;
          batch.push(createMessage({ id: prefix + line, payload: obj, meta: { line } }));
        }
        if (batch.length >= ctx.batchSize) await flush();
      }
      if (!ctx.signal.aborted) {
        for (const s of skipped.splice(0)) {
          batch.push(createMessage({ id: prefix + s.line, payload: null, meta: { line: s.line }, error: new IxError('IX_RECORD_CSV_SYNTAX', { line: s.line, detail: s.detail }).message }));
        }
        await flush();
      }
    } finally {
      stream.destroy();
      parser.destroy();
    }
  }
}

export const fileSource = defineSource({
  kind: 'file',
  summary: 'Reads a JSONL, CSV or text file in batches, checkpointing its position after the sinks accepted each record.',
  description:
    'Files larger than memory stream through. A restart resumes after the last record every sink accepted. A line that is not valid JSON, or a CSV row with the wrong number of columns, goes to the dead-letter queue with its line number, and the flow goes on. The file must exist when the spec is checked or started: a missing file refuses the spec at its `path` before any flow starts.',
  config: fileSourceConfig,
  examples: [{ title: 'Orders from a JSONL file', yaml: 'path: ./data/orders.jsonl' }],
  // The input must exist when the spec is checked or started: a missing file refuses the spec
  // at its `path` before any flow starts, rather than failing this flow after others ran.
  check: async (config, ctx) => {
    const problem = await inputProblem(resolve(ctx.baseDir, config.path), config.path);
    return problem ? [{ field: ['path'], error: problem }] : [];
  },
  create: (config, ctx) => new FileSource(config, ctx.baseDir),
});
