/**
 * IPv4 arithmetic for IPAM, pure and synchronous. Addresses are unsigned 32-bit integers
 * (0 … 2^32-1, kept non-negative with `>>> 0`); text forms are dotted quads and `a.b.c.d/n`.
 * Parsers return a reason instead of throwing, so the caller decides which input field to blame.
 */

/** An IPv4 address as an unsigned 32-bit integer. */
export type Ipv4 = number;

/** A network: its first address (host bits zero) and prefix length 0..32. */
export interface Ipv4Cidr {
  network: Ipv4;
  prefix: number;
}

/** An inclusive range of addresses, start ≤ end. */
export interface Ipv4Range {
  start: Ipv4;
  end: Ipv4;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** `10.0.0.1` → 167772161. Four decimal octets 0..255, no leading zeros (they read as octal elsewhere). */
export function parseIpv4(text: string): Ipv4 | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!OCTET.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: Ipv4): string {
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff].join('.');
}

/** The netmask of a prefix length as an unsigned integer: 24 → 255.255.255.0. */
export function netmask(prefix: number): Ipv4 {
  return prefix === 0 ? 0 : (0xffff_ffff << (32 - prefix)) >>> 0;
}

/**
 * `10.0.0.0/24` → { network, prefix }. Strict: host bits must be zero (`10.0.0.1/24` is refused,
 * naming `10.0.0.0/24`), and the prefix length is required.
 */
export function parseCidr(text: string): Parsed<Ipv4Cidr> {
  const slash = text.indexOf('/');
  if (slash < 0) return { ok: false, reason: `'${text}' is not an IPv4 CIDR (expected a.b.c.d/n)` };
  const address = parseIpv4(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (address === undefined || !/^(0|[1-9][0-9]?)$/.test(prefixText) || Number(prefixText) > 32) {
    return { ok: false, reason: `'${text}' is not an IPv4 CIDR (expected a.b.c.d/n, n from 0 to 32)` };
  }
  const prefix = Number(prefixText);
  const network = (address & netmask(prefix)) >>> 0;
  if (network !== address) {
    return { ok: false, reason: `'${text}' has host bits set: the network is ${formatCidr({ network, prefix })}` };
  }
  return { ok: true, value: { network, prefix } };
}

export function formatCidr(cidr: Ipv4Cidr): string {
  return `${formatIpv4(cidr.network)}/${cidr.prefix}`;
}

/** The last address of the network (all host bits set). */
export function broadcast(cidr: Ipv4Cidr): Ipv4 {
  return (cidr.network | ~netmask(cidr.prefix)) >>> 0;
}

export function contains(cidr: Ipv4Cidr, ip: Ipv4): boolean {
  return ip >= cidr.network && ip <= broadcast(cidr);
}

/** Addresses a host may use: the network without its network and broadcast addresses (empty for /31 and /32). */
export function usableRange(cidr: Ipv4Cidr): Ipv4Range | undefined {
  if (cidr.prefix > 30) return undefined;
  return { start: cidr.network + 1, end: broadcast(cidr) - 1 };
}

/** True when the two networks share any address (one contains the other). */
export function cidrsOverlap(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  return contains(a, b.network) || contains(b, a.network);
}

export function rangesOverlap(a: Ipv4Range, b: Ipv4Range): boolean {
  return a.start <= b.end && b.start <= a.end;
}

export function rangeSize(range: Ipv4Range): number {
  return range.end - range.start + 1;
}

/** `range` without the addresses in `holes`, as sorted non-empty ranges. */
export function subtract(range: Ipv4Range, holes: readonly Ipv4[]): Ipv4Range[] {
  const out: Ipv4Range[] = [];
  let start = range.start;
  for (const hole of [...new Set(holes)].sort((x, y) => x - y)) {
    if (hole < start || hole > range.end) continue;
    if (hole > start) out.push({ start, end: hole - 1 });
    start = hole + 1;
  }
  if (start <= range.end) out.push({ start, end: range.end });
  return out;
}

export interface SubnetPlanInput {
  cidr: string;
  /** undefined: the first usable address; null: no gateway. */
  gatewayIp?: string | null | undefined;
  /** undefined: every usable address except the gateway. */
  allocationPools?: ReadonlyArray<{ start: string; end: string }> | undefined;
  dnsNameservers?: readonly string[] | undefined;
}

/** A validated subnet in canonical text form: pools sorted by start. */
export interface SubnetPlan {
  cidr: string;
  prefix: number;
  gatewayIp: string | null;
  allocationPools: Array<{ start: string; end: string }>;
  dnsNameservers: string[];
}

export type FieldProblem = { field: 'cidr' | 'gateway_ip' | 'allocation_pools' | 'dns_nameservers'; message: string };

/**
 * Validates a subnet definition the way Neutron does for IPv4: a CIDR with host bits zero and room
 * for hosts (prefix ≤ 30); a gateway inside it that is neither the network nor the broadcast address;
 * pools inside the usable range, start ≤ end, not overlapping each other, not containing the gateway.
 * Returns the canonical plan, or every problem found (by field) when the input is invalid.
 */
export function planSubnet(input: SubnetPlanInput): { ok: true; plan: SubnetPlan } | { ok: false; problems: FieldProblem[] } {
  const parsed = parseCidr(input.cidr);
  if (!parsed.ok) return { ok: false, problems: [{ field: 'cidr', message: parsed.reason }] };
  const cidr = parsed.value;
  const usable = usableRange(cidr);
  if (!usable) {
    return { ok: false, problems: [{ field: 'cidr', message: `${input.cidr} has no addresses for hosts: use a prefix length of 30 or less` }] };
  }
  const problems: FieldProblem[] = [];
  const cidrText = formatCidr(cidr);
  const inUsable = (ip: Ipv4) => ip >= usable.start && ip <= usable.end;

  let gateway: Ipv4 | null = null;
  if (input.gatewayIp === undefined) {
    gateway = usable.start;
  } else if (input.gatewayIp !== null) {
    const ip = parseIpv4(input.gatewayIp);
    if (ip === undefined) problems.push({ field: 'gateway_ip', message: `'${input.gatewayIp}' is not an IPv4 address` });
    else if (!contains(cidr, ip)) problems.push({ field: 'gateway_ip', message: `${input.gatewayIp} is not inside ${cidrText}` });
    else if (!inUsable(ip)) problems.push({ field: 'gateway_ip', message: `${input.gatewayIp} is the network or broadcast address of ${cidrText}` });
    else gateway = ip;
  }

  let pools: Ipv4Range[];
  if (input.allocationPools === undefined) {
    pools = subtract(usable, gateway === null ? [] : [gateway]);
  } else {
    pools = [];
    input.allocationPools.forEach((pool, i) => {
      const label = `pool ${i} (${pool.start}-${pool.end})`;
      const start = parseIpv4(pool.start);
      const end = parseIpv4(pool.end);
      if (start === undefined || end === undefined) {
        problems.push({ field: 'allocation_pools', message: `${label}: start and end must be IPv4 addresses` });
      } else if (start > end) {
        problems.push({ field: 'allocation_pools', message: `${label}: start is after end` });
      } else if (!inUsable(start) || !inUsable(end)) {
        problems.push({
          field: 'allocation_pools',
          message: `${label}: not inside the usable addresses of ${cidrText} (${formatIpv4(usable.start)}-${formatIpv4(usable.end)})`,
        });
      } else if (gateway !== null && gateway >= start && gateway <= end) {
        problems.push({ field: 'allocation_pools', message: `${label}: contains the gateway ${formatIpv4(gateway)}` });
      } else {
        pools.push({ start, end });
      }
    });
    pools.sort((a, b) => a.start - b.start);
    for (let i = 1; i < pools.length; i++) {
      const prev = pools[i - 1]!;
      const cur = pools[i]!;
      if (rangesOverlap(prev, cur)) {
        problems.push({
          field: 'allocation_pools',
          message: `pools ${formatIpv4(prev.start)}-${formatIpv4(prev.end)} and ${formatIpv4(cur.start)}-${formatIpv4(cur.end)} overlap`,
        });
      }
    }
  }

  const dns: string[] = [];
  for (const server of input.dnsNameservers ?? []) {
    const ip = parseIpv4(server);
    if (ip === undefined) problems.push({ field: 'dns_nameservers', message: `'${server}' is not an IPv4 address` });
    else dns.push(formatIpv4(ip));
  }

  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    plan: {
      cidr: cidrText,
      prefix: cidr.prefix,
      gatewayIp: gateway === null ? null : formatIpv4(gateway),
      allocationPools: pools.map((p) => ({ start: formatIpv4(p.start), end: formatIpv4(p.end) })),
      dnsNameservers: dns,
    },
  };
}
