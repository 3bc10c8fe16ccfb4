import { SpecError, formatProblem } from '../spec/problem.js';
import { Redactor } from '../observability/redact.js';

/** An error as the CLI's one-line-per-problem form, secrets redacted. */
export function formatError(err: unknown, secrets: readonly string[] = []): string[] {
  const r = new Redactor(secrets);
  if (err instanceof SpecError) return err.problems.map((p) => r.redact(formatProblem(p)));
  const msg = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  return [`error: ${r.redact(msg)}${typeof code === 'string' && code.startsWith('IX_') ? ` [${code}]` : ''}`];
}

export function printError(err: unknown, secrets: readonly string[] = []): void {
  for (const line of formatError(err, secrets)) process.stderr.write(`${line}\n`);
}
