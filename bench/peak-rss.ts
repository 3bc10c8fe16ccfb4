import { readFileSync } from 'node:fs';

/**
 * This process's peak resident memory, in MB. On Linux it is VmHWM of /proc/self/status:
 * getrusage's maxRSS survives exec, so a child started by a big parent (the bench harness
 * holding output files) would report the parent's peak instead of its own.
 */
export function peakRssMB(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}
