import type { ErrorRule } from './config.js';

/** What went wrong with one attempt, as the errors table sees it. */
export type Failure =
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'network' | 'timeout' | 'invalid-response' | 'graphql' };

/** Defaults under every service's `errors:` (the service's and the endpoint's entries win). */
export const DEFAULT_ERRORS: Readonly<Record<string, ErrorRule>> = {
  '408': { action: 'retry' },
  '429': { action: 'retry', respectRetryAfter: true },
  '5xx': { action: 'retry' },
  '501': { action: 'dead-letter' },
  '505': { action: 'dead-letter' },
  '401': { action: 'refresh-auth' },
  '4xx': { action: 'dead-letter' },
  network: { action: 'retry' },
  timeout: { action: 'retry' },
  'invalid-response': { action: 'dead-letter' },
  graphql: { action: 'dead-letter' },
};

export class ErrorsTable {
  private readonly rules: Readonly<Record<string, ErrorRule>>;
  constructor(...layers: (Readonly<Record<string, ErrorRule>> | undefined)[]) {
    this.rules = Object.assign({}, DEFAULT_ERRORS, ...layers.filter(Boolean)) as Record<string, ErrorRule>;
  }

  /** The rule for a failure and the table key it matched (counts attempts per key). */
  lookup(f: Failure): { key: string; rule: ErrorRule } {
    if (f.kind === 'status') {
      const exact = String(f.status);
      const cls = `${exact[0]}xx`;
      const rule = this.rules[exact] ?? this.rules[cls];
      if (rule) return { key: this.rules[exact] ? exact : cls, rule };
      return { key: cls, rule: { action: f.status >= 500 ? 'retry' : 'dead-letter' } };
    }
    return { key: f.kind, rule: this.rules[f.kind] ?? { action: 'retry' } };
  }
}

/** A failure the circuit breaker counts: server errors and transport failures, not 4xx. */
export function countsForBreaker(f: Failure): boolean {
  if (f.kind === 'status') return f.status >= 500;
  return f.kind === 'network' || f.kind === 'timeout';
}
