import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import { CidrSet, normalizeAddress } from './ip.js';

/**
 * SSRF guard for outbound requests: loopback, private, link-local, cloud-metadata and other
 * special-purpose addresses are refused *after DNS resolution* (in the socket's `lookup`, so a
 * name that resolves differently on the second query cannot slip through), unless the spec
 * allows them. Reusable by any outbound connector (the HTTP connector may adopt it).
 */

/** Cloud metadata endpoints: refused even with `allowPrivateNetworks`, unless listed in `allow`. */
export const METADATA_NETWORKS = ['169.254.169.254/32', '169.254.170.2/32', '100.100.100.200/32', 'fd00:ec2::254/128'];

/** Special-purpose networks (RFC 6890 and friends) that an outbound webhook has no business reaching. */
export const PRIVATE_NETWORKS = [
  '0.0.0.0/8', // "this" network
  '10.0.0.0/8',
  '100.64.0.0/10', // carrier-grade NAT
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local (and metadata)
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, broadcast
  '::/128',
  '::1/128',
  '64:ff9b::/96', // NAT64 (may embed a private IPv4)
  '100::/64',
  '2001:db8::/32',
  'fc00::/7', // unique local
  'fe80::/10', // link-local
  'ff00::/8', // multicast
];

export interface SsrfPolicy {
  /** Allow loopback, private and link-local networks (not metadata endpoints). @defaultValue false */
  readonly allowPrivateNetworks?: boolean;
  /** Networks allowed even though special-purpose, e.g. `127.0.0.1/32` for a local receiver. */
  readonly allow?: readonly string[];
}

export class SsrfGuard {
  private readonly denied = new CidrSet(PRIVATE_NETWORKS);
  private readonly metadata = new CidrSet(METADATA_NETWORKS);
  private readonly allowed: CidrSet;
  private readonly allowPrivate: boolean;

  constructor(policy: SsrfPolicy = {}) {
    this.allowed = new CidrSet(policy.allow ?? []);
    this.allowPrivate = policy.allowPrivateNetworks ?? false;
  }

  /** Why `address` is refused, or undefined when it may be reached. */
  refusal(address: string): string | undefined {
    const a = normalizeAddress(address);
    if (this.allowed.has(a)) return undefined;
    if (this.metadata.has(a)) return `address ${a} is a cloud metadata endpoint`;
    if (!this.allowPrivate && this.denied.has(a)) return `address ${a} is loopback, private or link-local`;
    return undefined;
  }

  /** Checks a URL whose host is an IP literal (those never reach `lookup`). */
  checkUrl(url: URL): string | undefined {
    const host = normalizeAddress(url.hostname);
    return isIP(host) === 0 ? undefined : this.refusal(host);
  }

  /** A `lookup` for `net.connect` (and undici's `connect` options) that filters resolved addresses. */
  readonly lookup = (
    hostname: string,
    options: LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) {
        callback(err, '', 0);
        return;
      }
      const ok = addresses.filter((a) => this.refusal(a.address) === undefined);
      if (ok.length === 0) {
        const first = addresses[0]?.address ?? hostname;
        const e = new Error(`SSRF guard refused ${hostname}: ${this.refusal(first) ?? 'no address'}`) as NodeJS.ErrnoException;
        e.code = 'IX_SSRF_REFUSED';
        callback(e, '', 0);
        return;
      }
      if (options.all) callback(null, ok);
      else callback(null, (ok[0] as LookupAddress).address, (ok[0] as LookupAddress).family);
    });
  };
}
