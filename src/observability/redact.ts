/** Replaces every occurrence of a secret value with [REDACTED]. */
export class Redactor {
  private readonly values: string[];
  private readonly re: RegExp | undefined;

  constructor(values: readonly string[]) {
    // Longest first, so a secret containing another is replaced whole; very short values are
    // still redacted (a 1-character secret is a misconfiguration, but must not leak either).
    this.values = [...new Set(values.filter((v) => v.length > 0))].sort((a, b) => b.length - a.length);
    const variants = new Set<string>();
    for (const v of this.values) {
      variants.add(v);
      // The same value as it appears inside JSON strings.
      variants.add(JSON.stringify(v).slice(1, -1));
    }
    this.re = variants.size > 0 ? new RegExp([...variants].map(escape).join('|'), 'g') : undefined;
  }

  get active(): boolean {
    return this.re !== undefined;
  }

  redact(text: string): string {
    return this.re ? text.replace(this.re, '[REDACTED]') : text;
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
