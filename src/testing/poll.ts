/** Polls `fn` until `ok` holds (for tests under load: no fixed sleeps); throws with the last value. */
export async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: last ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The most events in any one-second window, from sorted times in ms (what a rate limit bounds). */
export function busiest(sorted: readonly number[]): number {
  let worst = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while ((sorted[i] as number) - (sorted[j] as number) >= 1000) j++;
    worst = Math.max(worst, i - j + 1);
  }
  return worst;
}
