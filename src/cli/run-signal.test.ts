import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startIx } from '../testing/cli.js';

/** Opens a FIFO for writing once a reader holds it open (the process waits in its read). */
async function openWriterWhenRead(fifo: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO' || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

describe('ix run and signals', () => {
  // The spec's secret is a FIFO: `ix run` blocks reading it while it starts, so the test knows
  // the signal lands mid-startup, after the CLI has loaded and before the flows run.
  it.skipIf(process.platform === 'win32')('a SIGTERM during startup lets the start finish, drains and exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ix-signal-'));
    const fifo = join(dir, 'token.fifo');
    execFileSync('mkfifo', [fifo]);
    const spec = [
      'version: 1',
      'admin: { enabled: false }',
      'secrets: { TOKEN: "file:./token.fifo" }',
      'flows:',
      '  ticks:',
      '    source: { generate: { rate: 20/s, payload: { token: "${secrets.TOKEN}" } } }',
      '    sink: { stdout: {} }',
      '',
    ].join('\n');
    writeFileSync(join(dir, 'spec.yaml'), spec);
    const run = startIx(['run', 'spec.yaml', '--log-level', 'info'], { cwd: dir });
    try {
      const fd = await openWriterWhenRead(fifo, 60_000);
      expect(run.child.kill('SIGTERM')).toBe(true);
      // give the signal time to arrive while the reader is still blocked
      await new Promise((r) => setTimeout(r, 300));
      writeSync(fd, 's3cret\n');
      closeSync(fd);
      expect(await run.exited).toBe(0);
      expect(run.stderr()).toMatch(/interchange started/);
      expect(run.stderr()).toMatch(/shutting down/);
      expect(run.stderr()).toMatch(/interchange stopped/);
      expect(run.stderr()).not.toContain('s3cret');
    } finally {
      if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
    }
  }, 120_000);
});
