/** A numbered, forward-only schema change, applied in one transaction. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}
