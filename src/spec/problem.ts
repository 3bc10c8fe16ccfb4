import { IxError, type ErrorCode } from '../core/errors.js';

/** One thing wrong with a spec, at a place in its file. */
export interface SpecProblem {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly code: ErrorCode;
  readonly message: string;
}

export function formatProblem(p: SpecProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`;
}

/** A spec that cannot run: every problem found, each printable as one line. */
export class SpecError extends Error {
  readonly problems: readonly SpecProblem[];
  readonly code: ErrorCode;
  constructor(problems: SpecProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'SpecError';
    this.problems = problems;
    this.code = problems[0]?.code ?? 'IX_SPEC_INVALID';
  }
}

export function problemFromError(file: string, line: number, col: number, err: unknown): SpecProblem {
  if (err instanceof IxError) return { file, line, col, code: err.code, message: err.message };
  return { file, line, col, code: 'IX_SPEC_INVALID', message: err instanceof Error ? err.message : String(err) };
}
