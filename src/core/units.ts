/** Durations, rates and sizes, parsed in one place for the whole spec. */

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|sec|m|min|h|d)$/;

/** `200ms`, `1.5s`, `5m`, `2h`, `1d`, `1h30m`, or a number of milliseconds. */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) throw new RangeError(`invalid duration ${input}`);
    return input;
  }
  const text = input.trim();
  if (/^\d+$/.test(text)) return Number(text);
  let total = 0;
  let rest = text;
  const part = /^(\d+(?:\.\d+)?)(ms|sec|min|s|m|h|d)/;
  if (rest.length === 0) throw new RangeError(`invalid duration "${input}"`);
  while (rest.length > 0) {
    const m = part.exec(rest);
    if (!m) throw new RangeError(`invalid duration "${input}": use e.g. 200ms, 5s, 5m, 2h, 1d`);
    total += Number(m[1]) * (DURATION_UNITS[m[2] as string] as number);
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}

export function isDuration(input: string): boolean {
  try {
    parseDuration(input);
    return true;
  } catch {
    return false;
  }
}

export interface Rate {
  /** How many events… */
  readonly count: number;
  /** …per this many milliseconds. */
  readonly perMs: number;
}

const RATE_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  second: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
};

/** `100/min`, `20/s`, `5/sec`, `1000/hour`, `10/5s`. */
export function parseRate(input: string): Rate {
  const m = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$/.exec(input);
  if (!m) throw new RangeError(`invalid rate "${input}": use e.g. 100/min, 20/s, 1000/hour`);
  const unit = RATE_UNITS[m[3] as string];
  if (unit === undefined) throw new RangeError(`invalid rate unit "${m[3]}" in "${input}": use s, min, hour or day`);
  const mult = m[2] === undefined ? 1 : Number(m[2]);
  const count = Number(m[1]);
  if (count <= 0) throw new RangeError(`invalid rate "${input}": the count must be positive`);
  return { count, perMs: unit * mult };
}

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
};

/** `512`, `64KiB`, `1MiB`, `10MB`, `2GiB`. */
export function parseSize(input: string | number): number {
  if (typeof input === 'number') return input;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input);
  if (!m) throw new RangeError(`invalid size "${input}": use e.g. 512KiB, 1MiB, 10MB`);
  const unit = (m[2] as string).toLowerCase() || 'b';
  const mult = SIZE_UNITS[unit];
  if (mult === undefined) throw new RangeError(`invalid size unit "${m[2]}" in "${input}": use B, KiB, MiB, GiB, KB, MB, GB`);
  return Math.round(Number(m[1]) * mult);
}

export const DURATION_PATTERN = DURATION_RE.source;
