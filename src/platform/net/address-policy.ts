import ipaddr from 'ipaddr.js';

/**
 * Which IP addresses an outbound fetch may connect to. An allow-list: only ipaddr.js's `unicast`
 * (the global, routable space) passes; every named special range (private, loopback, link-local,
 * unique-local, multicast, unspecified, broadcast, CGNAT, reserved, documentation, benchmarking…)
 * is refused, as is anything ipaddr.js learns to classify in a later version.
 *
 * IPv6 forms that carry an IPv4 address (mapped, SIIT, NAT64 well-known prefix, 6to4) are judged by
 * the IPv4 address they embed, because that is where the packets end up.
 */

/** Cloud metadata endpoints: refused even when private addresses are allowed (e.g. in tests). */
const METADATA_ADDRESSES = new Set(['169.254.169.254', '169.254.170.2', '100.100.100.200', 'fd00:ec2::254']);

/** Ranges refused on top of ipaddr.js's classification (they come back as `unicast`). */
const EXTRA_BLOCKED_V6: readonly [ipaddr.IPv6, number][] = [
  // IPv4-compatible (deprecated, RFC 4291) and the rest of the IANA-reserved ::/8.
  [ipaddr.IPv6.parse('::'), 8],
  // NAT64 local-use prefix (RFC 8215): the embedded IPv4 position depends on the operator's prefix.
  [ipaddr.IPv6.parse('64:ff9b:1::'), 48],
];

/** Canonical text form: IPv6 in RFC 5952 without zone, IPv4 dotted quad. `null` if not an IP. */
export function normaliseIp(text: string): string | null {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (!ipaddr.isValid(bare)) return null;
  const parsed = ipaddr.parse(bare);
  return parsed.kind() === 'ipv6' ? (parsed as ipaddr.IPv6).toRFC5952String() : parsed.toString();
}

export function isMetadataAddress(ip: string): boolean {
  const normal = normaliseIp(ip);
  if (normal === null) return false;
  if (METADATA_ADDRESSES.has(normal)) return true;
  const parsed = ipaddr.parse(normal);
  if (parsed.kind() === 'ipv4') return false;
  const embedded = embeddedIPv4(parsed as ipaddr.IPv6);
  return embedded !== null && METADATA_ADDRESSES.has(embedded.toString());
}

/** True if `ip` is a public unicast address an outbound fetch may connect to. */
export function isPublicAddress(ip: string): boolean {
  const bare = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  // Strict parsing: no shorthand IPv4 (`127.1`) or zone identifiers sneak through here.
  if (!ipaddr.IPv4.isValidFourPartDecimal(bare) && !ipaddr.IPv6.isValid(bare)) return false;
  if (bare.includes('%')) return false;
  if (isMetadataAddress(bare)) return false;
  const parsed = ipaddr.parse(bare);
  if (parsed.kind() === 'ipv4') return isPublicV4(parsed as ipaddr.IPv4);
  const v6 = parsed as ipaddr.IPv6;
  const embedded = embeddedIPv4(v6);
  if (embedded !== null) return isPublicV4(embedded);
  if (EXTRA_BLOCKED_V6.some((cidr) => v6.match(cidr))) return false;
  return v6.range() === 'unicast';
}

function isPublicV4(v4: ipaddr.IPv4): boolean {
  return v4.range() === 'unicast';
}

/**
 * The IPv4 address an IPv6 address routes to, for the forms that embed one. Teredo is not unpacked:
 * it is refused outright as a non-`unicast` range.
 */
function embeddedIPv4(v6: ipaddr.IPv6): ipaddr.IPv4 | null {
  const p = v6.parts;
  const fromParts = (hi: number, lo: number): ipaddr.IPv4 =>
    new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  const range = v6.range();
  // ::ffff:a.b.c.d, ::ffff:0:a.b.c.d, 64:ff9b::a.b.c.d (the /48 local-use prefix is refused outright).
  if (range === 'ipv4Mapped' || range === 'rfc6145' || range === 'rfc6052') {
    if (v6.match(ipaddr.IPv6.parse('64:ff9b:1::'), 48)) return null;
    return fromParts(p[6] ?? 0, p[7] ?? 0);
  }
  if (range === '6to4') return fromParts(p[1] ?? 0, p[2] ?? 0); // 2002:AABB:CCDD::/48
  return null;
}
