import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { Logger } from '../core/logger.js';
import { Redactor } from './redact.js';

export interface LoggerOptions {
  readonly level?: string;
  /** Human-readable lines (pino-pretty) instead of JSON; default: when stderr is a terminal. */
  readonly pretty?: boolean;
  /** Secret values that must never appear in a log line. */
  readonly secrets?: readonly string[];
  /** Where lines go; stderr by default. */
  readonly destination?: DestinationStream;
}

/** JSON logs (pino) by default, readable on a terminal; every line passes the secret redactor. */
export function createLogger(options: LoggerOptions = {}): Logger & PinoLogger {
  const redactor = new Redactor(options.secrets ?? []);
  const pretty = options.pretty ?? process.stderr.isTTY === true;
  const hooks = redactor.active ? { streamWrite: (s: string) => redactor.redact(s) } : {};
  const base = { level: options.level ?? 'info', base: { pid: process.pid }, hooks };
  if (options.destination) return pino(base, options.destination);
  if (pretty) {
    return pino(
      base,
      pino.transport({ target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } }),
    );
  }
  return pino(base, pino.destination({ dest: 2, sync: false }));
}
