import { IxError } from '../core/errors.js';
import type { Resources } from '../core/component.js';
import { hint } from '../spec/did-you-mean.js';

/** The built resources of a spec's sections, by section key then name. */
export class ResourceTable implements Resources {
  private readonly sections = new Map<string, Map<string, unknown>>();

  set(section: string, name: string, value: unknown): void {
    let m = this.sections.get(section);
    if (!m) {
      m = new Map();
      this.sections.set(section, m);
    }
    m.set(name, value);
  }

  has(section: string, name: string): boolean {
    return this.sections.get(section)?.has(name) ?? false;
  }

  get<T>(section: string, name: string): T {
    const m = this.sections.get(section);
    if (!m || !m.has(name)) {
      const known = m ? [...m.keys()] : [];
      throw new IxError('IX_SPEC_UNKNOWN_REFERENCE', {
        ref: `${section}.${name}`,
        hint: hint(name, known) || (known.length ? ` (defined: ${known.join(', ')})` : ` (no ${section} are defined)`),
      });
    }
    return m.get(name) as T;
  }

  entries(): [string, string, unknown][] {
    const out: [string, string, unknown][] = [];
    for (const [s, m] of this.sections) for (const [n, v] of m) out.push([s, n, v]);
    return out;
  }
}
