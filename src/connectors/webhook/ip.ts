import { BlockList, isIP } from 'node:net';

/** IPv4 and IPv6 CIDR sets, the client address behind trusted proxies. */

/** `::ffff:1.2.3.4` → `1.2.3.4`; brackets and zone ids removed. */
export function normalizeAddress(address: string): string {
  let a = address.trim();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) return mapped[1] as string;
  return a;
}

/** A set of networks: `10.0.0.0/8`, `2001:db8::/32`, or single addresses. */
export class CidrSet {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(cidrs: readonly string[]) {
    for (const c of cidrs) this.add(c);
    this.size = cidrs.length;
  }

  private add(cidr: string): void {
    const [addrRaw, bitsRaw] = cidr.trim().split('/');
    const addr = normalizeAddress(addrRaw ?? '');
    const family = isIP(addr);
    if (family === 0) throw new TypeError(`invalid address or network "${cidr}": use e.g. 192.0.2.0/24 or 2001:db8::/32`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    const max = family === 4 ? 32 : 128;
    const bits = bitsRaw === undefined ? max : Number(bitsRaw);
    if (!Number.isInteger(bits) || bits < 0 || bits > max) throw new TypeError(`invalid prefix length in "${cidr}"`);
    this.list.addSubnet(addr, bits, type);
  }

  has(address: string): boolean {
    const a = normalizeAddress(address);
    const family = isIP(a);
    if (family === 0) return false;
    return this.list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/**
 * The client's address. Without trusted proxies it is the socket's peer. When the peer is a
 * trusted proxy, `X-Forwarded-For` is read from the right, skipping trusted proxies; the first
 * address that is not one is the client (a client cannot forge its way past the proxies).
 */
export function clientAddress(remote: string, forwardedFor: string | string[] | undefined, trusted: CidrSet | undefined): string {
  const peer = normalizeAddress(remote);
  if (!trusted || trusted.size === 0 || !trusted.has(peer)) return peer;
  const raw = Array.isArray(forwardedFor) ? forwardedFor.join(',') : (forwardedFor ?? '');
  const hops = raw
    .split(',')
    .map((s) => normalizeAddress(s))
    .filter((s) => s !== '');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i] as string;
    if (isIP(hop) === 0) return peer;
    if (!trusted.has(hop)) return hop;
  }
  return hops[0] ?? peer;
}
