import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const IX_BIN = join(import.meta.dirname, '../../bin/ix.js');

export interface Running {
  readonly child: ChildProcess;
  /** stderr so far. */
  stderr(): string;
  stdout(): string;
  /** Resolves with the exit code (or the signal name). */
  readonly exited: Promise<number | string>;
  /** Resolves when stderr has a line matching `re`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
}

/** Starts `ix ARGS` as a child process (for crash and end-to-end tests). */
export function startIx(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Running {
  const child = spawn(process.execPath, [IX_BIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  const watchers: { re: RegExp; resolve: () => void }[] = [];
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of watchers.splice(0)) {
      if (w.re.test(err)) w.resolve();
      else watchers.push(w);
    }
  });
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    exited,
    waitFor: (re, timeoutMs = 60_000) =>
      new Promise<void>((resolve, reject) => {
        if (re.test(err)) {
          resolve();
          return;
        }
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re} in:\n${err}`)), timeoutMs);
        watchers.push({
          re,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        });
        void exited.then((code) => {
          if (!re.test(err)) {
            clearTimeout(t);
            reject(new Error(`ix exited (${code}) before ${re}:\nstderr: ${err}\nstdout: ${out}`));
          }
        });
      }),
  };
}

/** Runs `ix ARGS` to its end: exit code (or signal), stdout and stderr. */
export async function runIx(args: string[], cwd: string): Promise<{ code: number | string; out: string; err: string }> {
  const r = startIx(args, { cwd });
  const code = await r.exited;
  return { code, out: r.stdout(), err: r.stderr() };
}
