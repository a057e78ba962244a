import { BlockList, isIP } from 'node:net';

/**
 * Address ranges a sandbox must never reach, whatever its allowlist says (DESIGN §7): the
 * runner's own machine, its network, the cloud provider's metadata service and anything that
 * is not a unicast address on the public internet. Checked against every address a name
 * resolves to, before connecting.
 *
 * The documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are
 * left out on purpose: nothing routes them, so they reach nobody, and tests use them as
 * stand-ins for public addresses.
 */
const RANGES: ReadonlyArray<{ reason: string; v4?: readonly string[]; v6?: readonly string[] }> = [
  // First, so 169.254.169.254 is named for what it is rather than as link-local.
  { reason: 'the cloud metadata service', v4: ['169.254.169.254/32', '100.100.100.200/32'], v6: ['fd00:ec2::254/128'] },
  { reason: 'a loopback address', v4: ['127.0.0.0/8'], v6: ['::1/128'] },
  { reason: 'an unspecified ("this network") address', v4: ['0.0.0.0/8'], v6: ['::/128'] },
  { reason: 'a link-local address', v4: ['169.254.0.0/16'], v6: ['fe80::/10'] },
  {
    reason: 'a private network address',
    v4: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'],
    // fec0::/10 is the deprecated site-local range; 64:ff9b:1::/48 is NAT64 for local use.
    v6: ['fc00::/7', 'fec0::/10', '64:ff9b:1::/48'],
  },
  { reason: 'a shared (carrier-grade NAT) address', v4: ['100.64.0.0/10'] },
  { reason: 'a multicast address', v4: ['224.0.0.0/4'], v6: ['ff00::/8'] },
  {
    reason: 'a reserved address',
    // 240.0.0.0/4 includes the broadcast address; 192.0.0.0/24 holds protocol assignments;
    // 198.18.0.0/15 is for benchmarking and often used inside networks.
    v4: ['240.0.0.0/4', '192.0.0.0/24', '198.18.0.0/15'],
    // ::/96 is the deprecated IPv4-compatible form; 100::/64 discards; 2001::/32 is Teredo,
    // whose embedded address cannot be checked.
    v6: ['::/96', '100::/64', '2001::/32'],
  },
];

/**
 * IPv6 prefixes that carry an IPv4 address in their low bits: an IPv4 range that is refused is
 * refused in each of these forms too (`::ffff:127.0.0.1`, `64:ff9b::7f00:1`, `2002:7f00:1::`).
 * `shift` is where the 32 IPv4 bits start, counted from the most significant bit.
 */
const EMBEDDINGS: ReadonlyArray<{ prefix: bigint; shift: number }> = [
  // IPv4-mapped ::ffff:0:0/96.
  { prefix: 0xffffn << 32n, shift: 96 },
  // NAT64 well-known prefix 64:ff9b::/96.
  { prefix: 0x0064ff9bn << 96n, shift: 96 },
  // 6to4 2002::/16.
  { prefix: 0x2002n << 112n, shift: 16 },
];

const LISTS: ReadonlyArray<{ reason: string; list: BlockList }> = RANGES.map(({ reason, v4 = [], v6 = [] }) => {
  const list = new BlockList();
  for (const cidr of v4) {
    const { address, prefix } = splitCidr(cidr);
    list.addSubnet(address, prefix, 'ipv4');
    const value = ipv4Value(address);
    for (const e of EMBEDDINGS) {
      const embedded = e.prefix | (value << BigInt(128 - e.shift - 32));
      list.addSubnet(ipv6Text(embedded), e.shift + prefix, 'ipv6');
    }
  }
  for (const cidr of v6) {
    const { address, prefix } = splitCidr(cidr);
    list.addSubnet(address, prefix, 'ipv6');
  }
  return { reason, list };
});

/**
 * Why `address` must not be connected to from a sandbox (e.g. `"a loopback address"`), or
 * undefined for a public unicast address. Anything that is not an IP address is refused.
 */
export function forbiddenAddressReason(address: string): string | undefined {
  // A zone index (fe80::1%eth0) only exists on link-local addresses.
  if (address.includes('%')) return 'a link-local address';
  const family = isIP(address);
  if (family === 0) return 'not an IP address';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const { reason, list } of LISTS) {
    if (list.check(address, type)) return reason;
  }
  return undefined;
}

function splitCidr(cidr: string): { address: string; prefix: number } {
  const slash = cidr.lastIndexOf('/');
  return { address: cidr.slice(0, slash), prefix: Number(cidr.slice(slash + 1)) };
}

function ipv4Value(address: string): bigint {
  return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

/** Full (uncompressed) text form of a 128-bit value; BlockList accepts it. */
function ipv6Text(value: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16));
  return groups.join(':');
}
