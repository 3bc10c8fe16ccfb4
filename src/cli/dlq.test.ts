import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runIx, startIx } from '../testing/cli.js';

const ix = runIx;

describe('ix dlq and graceful shutdown', () => {
  it('lists, shows and replays dead letters; the replay runs through the flow again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-dlq-'));
    writeFileSync(join(dir, 'in.jsonl'), '{"n":1}\nnot json\n{"n":3}\n');
    writeFileSync(
      join(dir, 'integration.yaml'),
      'version: 1\nadmin: { enabled: false }\nflows:\n  copy:\n    source: { file: { path: in.jsonl, format: lines } }\n    sink: { file: { path: out.txt } }\n',
    );
    // A first spec reads JSONL: line 2 is dead-lettered.
    writeFileSync(
      join(dir, 'strict.yaml'),
      'version: 1\nadmin: { enabled: false }\nflows:\n  copy:\n    source: { file: { path: in.jsonl } }\n    sink: { file: { path: out.txt, format: lines } }\n',
    );
    expect((await ix(['run', 'strict.yaml'], dir)).code).toBe(0);
    const list = await ix(['dlq', 'list', '--spec', 'strict.yaml'], dir);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^ID\s+FLOW\s+STAGE/);
    expect(list.out).toContain('invalid JSON at line 2');
    const json = await ix(['dlq', 'list', '--json'], dir);
    const entries = json.out.trim().split('\n').map((l) => JSON.parse(l) as { id: number; message: { id: string; payload: unknown } });
    expect(entries).toHaveLength(1);
    expect(entries[0]?.message).toMatchObject({ id: 'in.jsonl:2', payload: 'not json' });
    const show = await ix(['dlq', 'show', String(entries[0]?.id)], dir);
    expect(JSON.parse(show.out)).toMatchObject({ stage: 'source', attempts: 1, flow: 'copy' });
    const missing = await ix(['dlq', 'show', '999'], dir);
    expect(missing.code).toBe(1);
    expect(missing.err).toBe('error: no dead letter with id 999 [IX_DLQ_NOT_FOUND]\n');

    const replay = await ix(['dlq', 'replay', '--all'], dir);
    expect(replay.out).toBe('replayed 1 dead letter\n');
    // The next run of the flow takes the replayed message from its inbox.
    expect((await ix(['run', 'integration.yaml'], dir)).code).toBe(0);
    expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('{"n":1}\n{"n":3}\nnot json\n');
    expect((await ix(['dlq', 'list'], dir)).out).toBe('no dead letters\n');
  }, 180_000);

  it('on SIGTERM stops intake, drains, answers 503 meanwhile, and exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-term-'));
    writeFileSync(
      join(dir, 'spec.yaml'),
      'version: 1\nadmin: { enabled: false }\nhttp: { listen: "127.0.0.1:0" }\nflows:\n  in:\n    source: { http-server: { path: /in } }\n    sink: { file: { path: out.jsonl } }\n',
    );
    const run = startIx(['run', 'spec.yaml'], { cwd: dir });
    await run.waitFor(/"http":"[^"]+"/);
    const addr = /"http":"([^"]+)"/.exec(run.stderr())?.[1] as string;
    const ok = await fetch(`http://${addr}/in`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
    expect(ok.status).toBe(202);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.stderr()).toContain('shutting down');
    expect(readFileSync(join(dir, 'out.jsonl'), 'utf8')).toBe('{"a":1}\n');
  }, 180_000);
});
