/** Splits `host:port` (IPv6 in brackets). */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen.trim());
  if (!m) throw new Error(`invalid listen address "${listen}": use host:port`);
  return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) };
}
