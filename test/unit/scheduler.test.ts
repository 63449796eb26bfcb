/** The pure scheduler: filters with numbers, weighers, group policies, explanations. */
import {
  checkHost,
  DEFAULT_RATIOS,
  DEFAULT_SCHEDULER_CONFIG,
  explainRejections,
  imageRequirements,
  schedule,
  type HostState,
  type PlacementRequest,
} from '../../services/scheduler';

function host(name: string, over: Partial<HostState> = {}): HostState {
  return {
    name,
    enabled: true,
    alive: true,
    availabilityZone: 'nova',
    capacity: { vcpus: 4, ramMb: 4096, diskGb: 100 },
    ratios: DEFAULT_RATIOS,
    claimed: { vcpus: 0, ramMb: 0, diskGb: 0 },
    capabilities: { driver: 'Test', architecture: 'x86_64' },
    lastBuildFailureAt: null,
    ...over,
  };
}

const small: PlacementRequest = { vcpus: 1, ramMb: 512, diskGb: 10 };

describe('filters', () => {
  test('RAM with numbers: "ram: free 512 MiB < 2048 MiB requested"', () => {
    const h = host('host-b', { claimed: { vcpus: 1, ramMb: 3584, diskGb: 0 } });
    expect(checkHost(h, { vcpus: 1, ramMb: 2048, diskGb: 1 })).toEqual({
      host: 'host-b',
      filter: 'ram',
      reason: 'free 512 MiB < 2048 MiB requested (4096 MiB × 1 − 3584 MiB claimed)',
    });
    expect(explainRejections([checkHost(h, { vcpus: 1, ramMb: 2048, diskGb: 1 })!])).toMatch(/^host-b: ram: free 512 MiB < 2048 MiB requested/);
  });

  test('allocation ratios: 4 pCPU × 4.0 take 16 vCPU; RAM ratio 1.5 lets 6144 MiB in on 4096', () => {
    const h = host('a', { claimed: { vcpus: 15, ramMb: 0, diskGb: 0 } });
    expect(checkHost(h, { vcpus: 1, ramMb: 1, diskGb: 0 })).toBeUndefined();
    expect(checkHost(h, { vcpus: 2, ramMb: 1, diskGb: 0 })).toMatchObject({ filter: 'vcpu', reason: expect.stringMatching(/^free 1 < 2 requested \(4 × 4 − 15 claimed\)/) });
    const ram = host('r', { ratios: { ...DEFAULT_RATIOS, ram: 1.5 } });
    expect(checkHost(ram, { vcpus: 1, ramMb: 6144, diskGb: 0 })).toBeUndefined();
    expect(checkHost(ram, { vcpus: 1, ramMb: 6145, diskGb: 0 })?.filter).toBe('ram');
    expect(checkHost(host('d', { ratios: { ...DEFAULT_RATIOS, disk: 0.5 } }), { vcpus: 1, ramMb: 1, diskGb: 51 })?.filter).toBe('disk');
  });

  test('disabled, down, zone, excluded and required hosts each name their filter', () => {
    expect(checkHost(host('a', { enabled: false }), small)?.filter).toBe('enabled');
    expect(checkHost(host('a', { alive: false }), small)?.filter).toBe('alive');
    expect(checkHost(host('a', { availabilityZone: 'az1' }), { ...small, availabilityZone: 'az2' })).toMatchObject({
      filter: 'availability_zone',
      reason: 'in zone az1, not az2',
    });
    expect(checkHost(host('a', { availabilityZone: 'az1' }), { ...small, availabilityZone: 'az1' })).toBeUndefined();
    expect(checkHost(host('a'), { ...small, excludeHosts: { a: 'boot failed' } })?.filter).toBe('retry');
    expect(checkHost(host('a'), { ...small, requiredHost: { name: 'b', why: 'volumes' } })?.filter).toBe('required_host');
  });

  test('image properties: architecture, hypervisor type, minimum RAM and disk', () => {
    const req = (properties: Record<string, string>, min: { minRamMb?: number; minDiskGb?: number } = {}) => ({
      ...small,
      image: imageRequirements({ properties, ...min }),
    });
    expect(checkHost(host('a'), req({ architecture: 'aarch64' }))).toMatchObject({ filter: 'image_properties', reason: 'architecture x86_64, image wants aarch64' });
    expect(checkHost(host('a'), req({ architecture: 'x86_64', hypervisor_type: 'test' }))).toBeUndefined();
    expect(checkHost(host('a'), req({ hypervisor_type: 'qemu' }))).toMatchObject({ filter: 'image_properties', reason: 'hypervisor Test, image wants qemu' });
    expect(checkHost(host('a'), req({}, { minRamMb: 8192 }))).toMatchObject({ filter: 'ram', reason: expect.stringContaining('< 8192 MiB requested') });
    expect(checkHost(host('a'), req({}, { minDiskGb: 200 }))?.filter).toBe('disk');
  });

  test('hard group policies: anti-affinity refuses a host with a member, affinity refuses the others', () => {
    const anti = { ...small, group: { id: 'g', name: 'web', policy: 'anti-affinity' as const, memberHosts: ['a'] } };
    expect(checkHost(host('a'), anti)).toMatchObject({ filter: 'server_group', reason: expect.stringContaining('anti-affinity') });
    expect(checkHost(host('b'), anti)).toBeUndefined();
    const aff = { ...small, group: { id: 'g', name: 'db', policy: 'affinity' as const, memberHosts: ['a', 'a'] } };
    expect(checkHost(host('b'), aff)).toMatchObject({ filter: 'server_group', reason: 'affinity: group db is on a' });
    expect(checkHost(host('a'), aff)).toBeUndefined();
    // The first member of an affinity group may go anywhere.
    expect(checkHost(host('b'), { ...aff, group: { ...aff.group, memberHosts: [] } })).toBeUndefined();
  });
});

describe('weighers', () => {
  const hosts = [
    host('a', { claimed: { vcpus: 0, ramMb: 3000, diskGb: 0 } }),
    host('b', { claimed: { vcpus: 0, ramMb: 0, diskGb: 0 } }),
    host('c', { claimed: { vcpus: 0, ramMb: 1000, diskGb: 0 } }),
  ];

  test('spread puts the most free RAM first; pack the least; alternates follow in order; weights recorded', () => {
    const spread = schedule(hosts, small);
    expect([spread.host, ...spread.alternates]).toEqual(['b', 'c', 'a']);
    expect(spread.weights[0]).toEqual({ host: 'b', weight: 1, parts: { ram: 1 } });
    const pack = schedule(hosts, small, { ...DEFAULT_SCHEDULER_CONFIG, ramWeigher: 'pack' });
    expect([pack.host, ...pack.alternates]).toEqual(['a', 'c', 'b']);
  });

  test('a recent build failure weighs a host down; an old one does not', () => {
    const now = 1_000_000_000;
    const failing = [host('a', { lastBuildFailureAt: now - 1000 }), host('b', { claimed: { vcpus: 0, ramMb: 2000, diskGb: 0 } })];
    const recent = schedule(failing, small, DEFAULT_SCHEDULER_CONFIG, now);
    expect(recent.host).toBe('b');
    expect(recent.weights.find((w) => w.host === 'a')?.parts.build_failure).toBe(-DEFAULT_SCHEDULER_CONFIG.buildFailurePenalty);
    const old = schedule(failing, small, DEFAULT_SCHEDULER_CONFIG, now + DEFAULT_SCHEDULER_CONFIG.buildFailureWindowSeconds * 1000);
    expect(old.host).toBe('a');
  });

  test('soft policies weigh instead of filtering', () => {
    const softAnti = { ...small, group: { id: 'g', name: 'w', policy: 'soft-anti-affinity' as const, memberHosts: ['b', 'b', 'c'] } };
    const d1 = schedule(hosts, softAnti);
    expect(d1.host).toBe('a');
    expect(d1.rejected).toEqual([]);
    const softAff = { ...small, group: { id: 'g', name: 'w', policy: 'soft-affinity' as const, memberHosts: ['a'] } };
    expect(schedule(hosts, softAff).host).toBe('a');
    // Only host a has members, and it is full: soft affinity gives way.
    const full = [host('a', { claimed: { vcpus: 16, ramMb: 0, diskGb: 0 } }), host('b')];
    expect(schedule(full, softAff).host).toBe('b');
  });

  test('no host fits: every host listed with its filter and numbers', () => {
    const d = schedule([host('a', { alive: false }), host('b', { claimed: { vcpus: 0, ramMb: 3584, diskGb: 0 } })], { vcpus: 1, ramMb: 2048, diskGb: 1 });
    expect(d.host).toBeNull();
    expect(explainRejections(d.rejected)).toBe(
      'a: alive: host agent is down; b: ram: free 512 MiB < 2048 MiB requested (4096 MiB × 1 − 3584 MiB claimed)',
    );
    expect(explainRejections([])).toBe('no host agent has registered');
  });

  test('1,000 hosts: every host is either weighed or rejected, once (timings: npm run bench:schedule)', () => {
    const many = Array.from({ length: 1000 }, (_, i) => host(`h${String(i).padStart(4, '0')}`, { claimed: { vcpus: i % 16, ramMb: (i * 37) % 4096, diskGb: 0 } }));
    const d = schedule(many, small);
    expect(d.host).not.toBeNull();
    expect(d.weights.length + d.rejected.length).toBe(1000);
    expect(new Set([...d.weights.map((w) => w.host), ...d.rejected.map((r) => r.host)]).size).toBe(1000);
    expect(new Set(d.rejected.map((r) => r.filter))).toEqual(new Set(['ram']));
  });
});
