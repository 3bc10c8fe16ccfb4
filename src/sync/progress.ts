/**
 * Progress of a sync run: a live bar per stream on a terminal (records, rate, ETA when the
 * source says its total), and `sync progress` log events at most every few seconds.
 */
import type { Logger } from '../core/logger.js';

interface Line {
  read: number;
  written: number;
  total?: number;
  done: boolean;
  startedAt: number;
}

export interface ProgressOptions {
  readonly job: string;
  readonly logger: Logger;
  /** A terminal to draw on (process.stderr when it is a TTY). */
  readonly tty?: NodeJS.WriteStream;
  /** Log events at most this often. @defaultValue 5000 */
  readonly logEveryMs?: number;
  readonly now?: () => number;
}

function fmtNumber(n: number): string {
  return n >= 1_000_000 ? `${(n / 1_000_000).toFixed(2)}M` : n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One stream's line: `customers  [#######.....]  52% 52.0k/100k  8.1k rec/s  ETA 6s`. */
export function progressLine(name: string, l: Line, now: number, width = 24): string {
  const secs = Math.max(0.001, (now - l.startedAt) / 1000);
  const rate = l.read / secs;
  const parts = [name.padEnd(16)];
  if (l.total && l.total > 0) {
    const f = Math.min(1, l.read / l.total);
    const filled = Math.round(f * width);
    parts.push(`[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`, `${String(Math.round(f * 100)).padStart(3)}%`, `${fmtNumber(l.read)}/${fmtNumber(l.total)}`);
  } else {
    parts.push(`${fmtNumber(l.read)} read`);
  }
  parts.push(`${fmtNumber(l.written)} written`, `${fmtNumber(Math.round(rate))} rec/s`);
  if (l.done) parts.push('done');
  else if (l.total && rate > 0) parts.push(`ETA ${fmtSeconds(Math.max(0, l.total - l.read) / rate)}`);
  return parts.join('  ');
}

export class Progress {
  private readonly lines = new Map<string, Line>();
  private readonly lastLog = new Map<string, number>();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly o: ProgressOptions) {
    this.now = o.now ?? Date.now;
    if (o.tty) {
      this.timer = setInterval(() => this.draw(), 200);
      this.timer.unref();
    }
  }

  readonly update = (stream: string, p: { read: number; written: number; total?: number; done: boolean }): void => {
    const now = this.now();
    let l = this.lines.get(stream);
    if (!l) {
      l = { read: 0, written: 0, done: false, startedAt: now };
      this.lines.set(stream, l);
    }
    l.read = p.read;
    l.written = p.written;
    l.done = p.done;
    if (p.total !== undefined) l.total = p.total;
    const last = this.lastLog.get(stream) ?? l.startedAt;
    if (p.done || now - last >= (this.o.logEveryMs ?? 5000)) {
      this.lastLog.set(stream, now);
      const secs = Math.max(0.001, (now - l.startedAt) / 1000);
      this.o.logger.info(
        { sync: this.o.job, stream, read: l.read, written: l.written, total: l.total, ratePerSec: Math.round(l.read / secs), done: l.done },
        'sync progress',
      );
    }
  };

  private draw(): void {
    const tty = this.o.tty;
    if (!tty) return;
    const now = this.now();
    let out = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const [name, l] of this.lines) out += `\x1b[2K${progressLine(name, l, now)}\n`;
    this.drawn = this.lines.size;
    tty.write(out);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.draw();
  }
}
