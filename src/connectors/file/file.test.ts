import { appendFileSync, mkdtempSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../../app/registry.js';
import { createMessage } from '../../core/message.js';
import { SpecError } from '../../spec/problem.js';
import { engineFromYaml } from '../../testing/harness.js';
import { receivedBy, registerMemory, resetMemory } from '../../testing/memory.js';
import { componentContext } from '../../testing/contexts.js';
import type { SourceContext } from '../../core/component.js';
import { FileSink } from './file-sink.js';
import { FileSource } from './file-source.js';

const registry = registerMemory(createRegistry());

async function runFlow(dir: string, source: string, batchSize = 500): Promise<Awaited<ReturnType<typeof engineFromYaml>>> {
  const t = await engineFromYaml(`version: 1\nflows:\n  f:\n    batchSize: ${batchSize}\n    source: { file: ${source} }\n    sink: { memory: { name: out } }\n`, registry, { dir });
  t.engine.start();
  await t.engine.done();
  await t.engine.stop();
  return t;
}

beforeEach(() => resetMemory());

describe('file source', () => {
  it('reads and parses its next batch only once the flow has room for it (backpressure before parsing)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-file-'));
    writeFileSync(join(dir, 'in.jsonl'), Array.from({ length: 10 }, (_, i) => JSON.stringify({ i })).join('\n') + '\n');
    const emitted: unknown[][] = [];
    const rooms: (() => void)[] = [];
    let saved: string | undefined;
    const ctx: SourceContext = {
      ...componentContext({ batchSize: 2 }),
      signal: new AbortController().signal,
      // The flow takes each batch at once and settles it; only `room` holds the source back.
      emit: (batch) => {
        emitted.push(batch.map((m) => m.payload));
        return Promise.resolve({ settled: Promise.resolve({ outcomes: [], delivered: batch.length, filtered: 0, deadLettered: 0 }) });
      },
      room: () => new Promise<void>((resolve) => rooms.push(resolve)),
      checkpoint: { get: () => Promise.resolve(saved), set: (v) => Promise.resolve(void (saved = v)) },
      persist: () => Promise.reject(new Error('not used')),
      http: { route: () => undefined },
      accepting: () => true,
    };
    const running = new FileSource({ path: 'in.jsonl' }, dir).run(ctx);
    for (let batches = 1; batches <= 5; batches++) {
      await expect.poll(() => rooms.length, { timeout: 10_000 }).toBe(batches);
      // Waiting for room: nothing of the next batch has been handed over yet.
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      expect(emitted).toHaveLength(batches);
      (rooms[batches - 1] as () => void)();
    }
    await running;
    expect(emitted.flat()).toEqual(Array.from({ length: 10 }, (_, i) => ({ i })));
    expect(JSON.parse(saved as string)).toMatchObject({ line: 10 });
  });

  it('reads JSONL, sends a malformed line to the DLQ with its line number, and goes on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-file-'));
    writeFileSync(join(dir, 'in.jsonl'), '{"a":1}\n{"a":2\n\n{"a":3}\r\n{"a":4}');
    const t = await runFlow(dir, '{ path: in.jsonl }', 2);
    expect(receivedBy('out').map((m) => m.payload)).toEqual([{ a: 1 }, { a: 3 }, { a: 4 }]);
    expect(receivedBy('out').map((m) => m.id)).toEqual(['in.jsonl:1', 'in.jsonl:4', 'in.jsonl:5']);
    const dead = await t.store.listDeadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]?.reason).toMatch(/^invalid JSON at line 2: /);
    expect(dead[0]?.stage).toBe('source');
    await t.store.close();
  });

  it('resumes after the checkpoint: a second run reads only what was appended', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-file-'));
    const path = join(dir, 'in.jsonl');
    writeFileSync(path, Array.from({ length: 1000 }, (_, i) => JSON.stringify({ i })).join('\n') + '\n');
    const t = await runFlow(dir, '{ path: in.jsonl }', 64);
    expect(receivedBy('out')).toHaveLength(1000);
    await t.store.close();
    resetMemory();
    appendFileSync(path, '{"i":1000}\n{"i":1001}\n');
    const t2 = await runFlow(dir, '{ path: in.jsonl }', 64);
    expect(receivedBy('out').map((m) => m.payload)).toEqual([{ i: 1000 }, { i: 1001 }]);
    expect(receivedBy('out')[0]?.id).toBe('in.jsonl:1001');
    await t2.store.close();
  });

  it('streams a file larger than a read chunk with lines split across chunks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-file-'));
    const n = 30_000;
    writeFileSync(join(dir, 'big.jsonl'), Array.from({ length: n }, (_, i) => JSON.stringify({ i, s: 'é'.repeat(i % 97) })).join('\n') + '\n');
    const t = await runFlow(dir, '{ path: big.jsonl }', 1000);
    const got = receivedBy('out');
    expect(got).toHaveLength(n);
    expect(got.every((m, i) => (m.payload as { i: number }).i === i)).toBe(true);
    await t.store.close();
  });

  it('reads CSV with a header, quoted fields, and a wrong column count to the DLQ', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-file-'));
    writeFileSync(join(dir, 'in.csv'), 'id,name,city\n1,"Lovelace, Ada",London\n2,Hopper\n3,"Knuth ""Don""","Stan\nford"\n');
    const t = await runFlow(dir, '{ path: in.csv }');
    expect(receivedBy('out').map((m) => m.payload)).toEqual([
      { id: '1', name: 'Lovelace, Ada', city: 'London' },
      { id: '3', name: 'Knuth "Don"', city: 'Stan\nford' },
    ]);
    const [d] = await t.store.listDeadLetters();
    expect(d?.reason).toBe('CSV row at line 3 has 2 columns, expected 3');
    await t.store.close();
  });

  it('refuses the spec at the path when the file is missing, before anything is built', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-file-'));
    const err = await runFlow(dir, '{ path: nope.jsonl }').then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SpecError);
    expect((err as SpecError).message).toBe(`${join(dir, 'spec.yaml')}:5:29: file not found: nope.jsonl`);
  });

  it('fails the flow with a clear error when the file vanished after the check', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-file-'));
    writeFileSync(join(dir, 'gone.jsonl'), '{"a":1}\n');
    const t = await engineFromYaml('version: 1\nflows:\n  f:\n    source: { file: { path: gone.jsonl } }\n    sink: { memory: { name: out } }\n', registry, { dir });
    unlinkSync(join(dir, 'gone.jsonl'));
    t.engine.start();
    await t.engine.done();
    expect(t.engine.failures()).toEqual([{ flow: 'f', error: 'file not found: gone.jsonl' }]);
    await t.close();
  });
});

describe('file sink', () => {
  it('cuts a torn last line left by a crash before appending', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-file-'));
    const path = join(dir, 'out.jsonl');
    writeFileSync(path, '{"a":1}\n{"a":2}\n{"a":');
    const sink = new FileSink({ path: 'out.jsonl', sync: 'batch' }, dir);
    await sink.write([createMessage({ id: '3', payload: { a: 3 } })]);
    await sink.close();
    expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n{"a":2}\n{"a":3}\n');
  });

  it('writes JSONL and lines byte for byte, multi-byte characters included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-file-'));
    // Long multi-byte lines too: the batch's buffer grows past its first guess.
    const payloads = [{ name: 'Zoë', city: '東京', emoji: '🚀' }, 'plain', 7, null, '東'.repeat(3000), { big: '🚀'.repeat(5000) }];
    const jsonl = new FileSink({ path: 'out.jsonl', sync: 'batch' }, dir);
    await jsonl.write(payloads.map((payload, i) => createMessage({ id: String(i), payload })));
    await jsonl.close();
    expect(readFileSync(join(dir, 'out.jsonl'), 'utf8')).toBe(`${payloads.map((p) => JSON.stringify(p)).join('\n')}\n`);
    const text = new FileSink({ path: 'out.txt', sync: 'none' }, dir);
    await text.write(payloads.map((payload, i) => createMessage({ id: String(i), payload })));
    await text.close();
    expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe(`{"name":"Zoë","city":"東京","emoji":"🚀"}\nplain\n7\nnull\n${'東'.repeat(3000)}\n${JSON.stringify({ big: '🚀'.repeat(5000) })}\n`);
  });

  it('writes CSV with a header once and RFC 4180 quoting', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-file-'));
    const sink = new FileSink({ path: 'out.csv', sync: 'none' }, dir);
    await sink.write([createMessage({ id: '1', payload: { id: 1, name: 'Lovelace, Ada' } })]);
    await sink.write([createMessage({ id: '2', payload: { id: 2, name: 'say "hi"' } })]);
    await sink.close();
    expect(readFileSync(join(dir, 'out.csv'), 'utf8')).toBe('id,name\r\n1,"Lovelace, Ada"\r\n2,"say ""hi"""\r\n');
  });

  it('keeps arrival order under concurrent writes and shares fsyncs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-file-'));
    const sink = new FileSink({ path: 'o.jsonl', sync: 'batch' }, dir);
    await Promise.all(Array.from({ length: 50 }, (_, i) => sink.write([createMessage({ id: String(i), payload: i })])));
    await sink.close();
    expect(readFileSync(join(dir, 'o.jsonl'), 'utf8').trim().split('\n').map(Number)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});
