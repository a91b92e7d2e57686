/**
 * Who the client is: the socket peer, or — behind proxies we trust — the right-most address of
 * `X-Forwarded-For` that is not itself a trusted proxy (the rule of nginx's `real_ip_recursive on`).
 */
import ipaddr from 'ipaddr.js'

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number]

/** A parsed `TRUST_PROXY`: the IPs and CIDR ranges whose `X-Forwarded-For` we believe. */
export class TrustedProxies {
  private constructor(private readonly ranges: readonly Range[]) {}

  /**
   * @example TrustedProxies.parse('10.0.0.0/8, 127.0.0.1').contains('10.1.2.3') // true
   * @throws Error on an entry that is neither an IP nor a CIDR range.
   */
  static parse(list: string): TrustedProxies {
    const ranges: Range[] = []
    for (const entry of list.split(',').map((e) => e.trim()).filter(Boolean)) {
      if (entry.includes('/')) {
        const [address, bits] = ipaddr.parseCIDR(entry)
        ranges.push([normalize(address), address.kind() === 'ipv6' && normalize(address).kind() === 'ipv4' ? bits - 96 : bits])
      } else if (ipaddr.isValid(entry)) {
        const address = normalize(ipaddr.parse(entry))
        ranges.push([address, address.kind() === 'ipv4' ? 32 : 128])
      } else {
        throw new Error(`${JSON.stringify(entry)} is not an IP address or CIDR range`)
      }
    }
    return new TrustedProxies(ranges)
  }

  get isEmpty(): boolean {
    return this.ranges.length === 0
  }

  contains(address: string): boolean {
    if (this.ranges.length === 0 || !ipaddr.isValid(address)) return false
    const parsed = normalize(ipaddr.parse(address))
    return this.ranges.some(([range, bits]) => range.kind() === parsed.kind() && parsed.match(range, bits))
  }

  /**
   * The client behind `peer`, a proxy already known to be trusted (`contains`): the right-most
   * address of `forwardedFor` that is not itself trusted.
   * @param peer canonical spelling (`canonicalIp`).
   * @example trusted('10.0.0.0/8').clientBehind('10.0.0.1', '203.0.113.9, 10.0.0.2') // '203.0.113.9'
   */
  clientBehind(peer: string, forwardedFor: string | null): string {
    if (!forwardedFor) return peer
    const hops = forwardedFor.split(',')
    let client = peer
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!.trim()
      // A trusted proxy that forwarded garbage: the last address we could verify is the best we know.
      if (!ipaddr.isValid(hop)) return client
      client = canonicalIp(hop)
      if (!this.contains(client)) return client
    }
    return client
  }
}

/** `::ffff:127.0.0.1` → `127.0.0.1`, so logs, limits and `TRUST_PROXY` see one spelling per address. */
export function canonicalIp(address: string): string {
  // Fast paths for what Bun reports on every request: plain IPv4, or IPv4 mapped into IPv6.
  if (!address.includes(':')) return address
  if (address.startsWith('::ffff:') && address.includes('.', 7)) return address.slice(7)
  if (!ipaddr.isValid(address)) return address
  return normalize(ipaddr.parse(address)).toString()
}

/** True for 127.0.0.0/8 and ::1 (including their IPv4-mapped forms). */
export function isLoopback(address: string): boolean {
  return ipaddr.isValid(address) && normalize(ipaddr.parse(address)).range() === 'loopback'
}

function normalize(address: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  return address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()
    ? (address as ipaddr.IPv6).toIPv4Address()
    : address
}
