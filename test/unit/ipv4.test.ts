/** IPv4 arithmetic and subnet validation (db/ipv4.ts). */
import {
  broadcast,
  cidrsOverlap,
  contains,
  formatCidr,
  formatIpv4,
  netmask,
  parseCidr,
  parseIpv4,
  planSubnet,
  rangeSize,
  rangesOverlap,
  subtract,
  usableRange,
  type Ipv4Cidr,
} from '../../db/ipv4';

const ip = (text: string): number => {
  const value = parseIpv4(text);
  if (value === undefined) throw new Error(`bad test address ${text}`);
  return value;
};
const cidr = (text: string): Ipv4Cidr => {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.value;
};

describe('addresses', () => {
  test.each([
    ['0.0.0.0', 0],
    ['10.0.0.1', 167772161],
    ['192.168.1.255', 3232236031],
    ['255.255.255.255', 4294967295],
  ])('%s ⇄ %d', (text, value) => {
    expect(parseIpv4(text)).toBe(value);
    expect(formatIpv4(value)).toBe(text);
  });

  test.each(['', '10.0.0', '10.0.0.0.1', '256.0.0.1', '10.0.0.-1', '010.0.0.1', '10.0.0.1 ', ' 10.0.0.1', '1e1.0.0.1', '0x10.0.0.1', '10..0.1', '::1', 'a.b.c.d'])(
    '%p is not an address',
    (text) => {
      expect(parseIpv4(text)).toBeUndefined();
    },
  );

  test('netmask', () => {
    expect(formatIpv4(netmask(0))).toBe('0.0.0.0');
    expect(formatIpv4(netmask(8))).toBe('255.0.0.0');
    expect(formatIpv4(netmask(24))).toBe('255.255.255.0');
    expect(formatIpv4(netmask(29))).toBe('255.255.255.248');
    expect(formatIpv4(netmask(32))).toBe('255.255.255.255');
  });
});

describe('CIDRs', () => {
  test('parse, format, broadcast, contains', () => {
    const c = cidr('10.1.2.0/24');
    expect(c).toEqual({ network: ip('10.1.2.0'), prefix: 24 });
    expect(formatCidr(c)).toBe('10.1.2.0/24');
    expect(formatIpv4(broadcast(c))).toBe('10.1.2.255');
    expect(contains(c, ip('10.1.2.0'))).toBe(true);
    expect(contains(c, ip('10.1.2.255'))).toBe(true);
    expect(contains(c, ip('10.1.3.0'))).toBe(false);
    expect(contains(c, ip('10.1.1.255'))).toBe(false);
    expect(formatIpv4(broadcast(cidr('0.0.0.0/0')))).toBe('255.255.255.255');
    expect(formatIpv4(broadcast(cidr('192.168.0.8/29')))).toBe('192.168.0.15');
    expect(formatIpv4(broadcast(cidr('10.0.0.7/32')))).toBe('10.0.0.7');
  });

  test('host bits set are refused, naming the network', () => {
    expect(parseCidr('10.0.0.1/24')).toEqual({ ok: false, reason: "'10.0.0.1/24' has host bits set: the network is 10.0.0.0/24" });
  });

  test.each(['10.0.0.0', '10.0.0.0/', '10.0.0.0/33', '10.0.0.0/024', '10.0.0.0/-1', '10.0.0/24', 'fd00::/64', '10.0.0.0/24/1'])('%p is not a CIDR', (text) => {
    expect(parseCidr(text).ok).toBe(false);
  });

  test('usable range excludes network and broadcast; none for /31 and /32', () => {
    expect(usableRange(cidr('10.0.0.0/24'))).toEqual({ start: ip('10.0.0.1'), end: ip('10.0.0.254') });
    expect(usableRange(cidr('10.0.0.0/30'))).toEqual({ start: ip('10.0.0.1'), end: ip('10.0.0.2') });
    expect(usableRange(cidr('10.0.0.0/31'))).toBeUndefined();
    expect(usableRange(cidr('10.0.0.0/32'))).toBeUndefined();
  });

  test('overlap', () => {
    expect(cidrsOverlap(cidr('10.0.0.0/16'), cidr('10.0.5.0/24'))).toBe(true);
    expect(cidrsOverlap(cidr('10.0.5.0/24'), cidr('10.0.0.0/16'))).toBe(true);
    expect(cidrsOverlap(cidr('10.0.0.0/24'), cidr('10.0.1.0/24'))).toBe(false);
    expect(cidrsOverlap(cidr('0.0.0.0/0'), cidr('203.0.113.0/24'))).toBe(true);
  });
});

describe('ranges', () => {
  test('overlap and size', () => {
    expect(rangesOverlap({ start: 1, end: 5 }, { start: 5, end: 9 })).toBe(true);
    expect(rangesOverlap({ start: 1, end: 4 }, { start: 5, end: 9 })).toBe(false);
    expect(rangeSize({ start: ip('10.0.0.1'), end: ip('10.0.0.254') })).toBe(254);
  });

  test('subtract holes', () => {
    expect(subtract({ start: 1, end: 10 }, [1])).toEqual([{ start: 2, end: 10 }]);
    expect(subtract({ start: 1, end: 10 }, [10])).toEqual([{ start: 1, end: 9 }]);
    expect(subtract({ start: 1, end: 10 }, [7, 3, 3, 20])).toEqual([
      { start: 1, end: 2 },
      { start: 4, end: 6 },
      { start: 8, end: 10 },
    ]);
    expect(subtract({ start: 1, end: 1 }, [1])).toEqual([]);
  });
});

describe('planSubnet', () => {
  test('defaults: gateway = first usable address, pool = the rest of the usable addresses', () => {
    expect(planSubnet({ cidr: '10.0.0.0/24' })).toEqual({
      ok: true,
      plan: { cidr: '10.0.0.0/24', prefix: 24, gatewayIp: '10.0.0.1', allocationPools: [{ start: '10.0.0.2', end: '10.0.0.254' }], dnsNameservers: [] },
    });
  });

  test('a gateway in the middle splits the default pool; no gateway leaves one pool', () => {
    const mid = planSubnet({ cidr: '192.168.0.0/28', gatewayIp: '192.168.0.7' });
    expect(mid.ok && mid.plan.allocationPools).toEqual([
      { start: '192.168.0.1', end: '192.168.0.6' },
      { start: '192.168.0.8', end: '192.168.0.14' },
    ]);
    const none = planSubnet({ cidr: '192.168.0.0/28', gatewayIp: null });
    expect(none.ok && none.plan).toMatchObject({ gatewayIp: null, allocationPools: [{ start: '192.168.0.1', end: '192.168.0.14' }] });
  });

  test('explicit pools are kept, sorted; dns servers canonical', () => {
    const r = planSubnet({
      cidr: '10.9.0.0/24',
      allocationPools: [
        { start: '10.9.0.100', end: '10.9.0.200' },
        { start: '10.9.0.10', end: '10.9.0.19' },
      ],
      dnsNameservers: ['9.9.9.9', '1.1.1.1'],
    });
    expect(r).toEqual({
      ok: true,
      plan: {
        cidr: '10.9.0.0/24',
        prefix: 24,
        gatewayIp: '10.9.0.1',
        allocationPools: [
          { start: '10.9.0.10', end: '10.9.0.19' },
          { start: '10.9.0.100', end: '10.9.0.200' },
        ],
        dnsNameservers: ['9.9.9.9', '1.1.1.1'],
      },
    });
  });

  test('/30: one gateway and one address to hand out', () => {
    const r = planSubnet({ cidr: '10.0.0.4/30' });
    expect(r.ok && r.plan).toMatchObject({ gatewayIp: '10.0.0.5', allocationPools: [{ start: '10.0.0.6', end: '10.0.0.6' }] });
  });

  const problems = (input: Parameters<typeof planSubnet>[0]) => {
    const r = planSubnet(input);
    if (r.ok) throw new Error('expected problems');
    return r.problems;
  };

  test.each([
    ['garbage', 'not an IPv4 CIDR'],
    ['10.0.0.1/24', 'host bits set'],
    ['10.0.0.0/31', 'no addresses for hosts'],
    ['10.0.0.0/32', 'no addresses for hosts'],
  ])('cidr %p → problem on cidr', (text, words) => {
    const p = problems({ cidr: text });
    expect(p).toEqual([{ field: 'cidr', message: expect.stringContaining(words) }]);
  });

  test.each([
    ['10.0.1.1', 'not inside 10.0.0.0/24'],
    ['10.0.0.0', 'network or broadcast'],
    ['10.0.0.255', 'network or broadcast'],
    ['nope', 'not an IPv4 address'],
  ])('gateway %p → problem on gateway_ip', (gatewayIp, words) => {
    expect(problems({ cidr: '10.0.0.0/24', gatewayIp })).toEqual([{ field: 'gateway_ip', message: expect.stringContaining(words) }]);
  });

  test.each([
    [[{ start: '10.0.0.10', end: '10.0.1.5' }], 'not inside the usable addresses'],
    [[{ start: '10.0.0.0', end: '10.0.0.5' }], 'not inside the usable addresses'],
    [[{ start: '10.0.0.250', end: '10.0.0.255' }], 'not inside the usable addresses'],
    [[{ start: '10.0.0.20', end: '10.0.0.10' }], 'start is after end'],
    [[{ start: '10.0.0.x', end: '10.0.0.10' }], 'must be IPv4 addresses'],
    [[{ start: '10.0.0.1', end: '10.0.0.10' }], 'contains the gateway 10.0.0.1'],
    [
      [
        { start: '10.0.0.10', end: '10.0.0.20' },
        { start: '10.0.0.20', end: '10.0.0.30' },
      ],
      'overlap',
    ],
  ])('pools %j → problem on allocation_pools', (allocationPools, words) => {
    expect(problems({ cidr: '10.0.0.0/24', allocationPools })).toEqual([{ field: 'allocation_pools', message: expect.stringContaining(words) }]);
  });

  test('every problem is reported at once, by field', () => {
    const p = problems({ cidr: '10.0.0.0/24', gatewayIp: '10.0.9.1', allocationPools: [{ start: '10.0.0.20', end: '10.0.0.10' }], dnsNameservers: ['x'] });
    expect(p.map((x) => x.field)).toEqual(['gateway_ip', 'allocation_pools', 'dns_nameservers']);
  });
});
