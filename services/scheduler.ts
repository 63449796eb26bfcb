/**
 * The scheduler (nova-scheduler + placement's rules), pure: no database, no clock of its own, no I/O.
 * Server placement (claimHost) and volume placement (pickVolumeHost) hand it the hosts as the
 * database shows them and get back a host, ordered alternates, the weights that decided, and, for
 * every host it rejected, the filter and the numbers ("host-b: ram: free 512 MiB < 2048 MiB requested").
 *
 * The same `checkHost` runs again inside the claim transaction, on the host row locked FOR UPDATE
 * (db/repositories/claims.ts), so what the database commits is what the filters allow, whatever
 * raced in between the decision and the claim.
 */

import type { GroupPolicy } from '../db/repositories/server-groups';

export type { GroupPolicy };

export interface Resources {
  vcpus: number;
  ramMb: number;
  diskGb: number;
}

export interface AllocationRatios {
  cpu: number;
  ram: number;
  disk: number;
}

/** Nova's defaults: vCPUs overcommitted 4:1, RAM and disk not at all. */
export const DEFAULT_RATIOS: AllocationRatios = { cpu: 4, ram: 1, disk: 1 };

/** A host as the scheduler sees it. */
export interface HostState {
  name: string;
  enabled: boolean;
  /** Up, and heartbeating recently. */
  alive: boolean;
  availabilityZone: string;
  /** Physical capacity as the agent reports it. */
  capacity: Resources;
  ratios: AllocationRatios;
  /** What the claims on it add up to. */
  claimed: Resources;
  /** Driver facts: `driver` (hypervisor type, e.g. QEMU, Test), `architecture` (e.g. x86_64). */
  capabilities: Record<string, unknown>;
  /** Epoch ms of the last build that failed there, or null. */
  lastBuildFailureAt: number | null;
}

/** What the image asks of a host (Glance properties, Nova's ImagePropertiesFilter). */
export interface ImageRequirements {
  architecture?: string | undefined;
  hypervisorType?: string | undefined;
  minRamMb?: number | undefined;
  minDiskGb?: number | undefined;
}

export interface GroupContext {
  id: string;
  name: string;
  policy: GroupPolicy;
  /** Hosts of the group's other members (one entry per member, so a host may repeat). */
  memberHosts: string[];
}

export interface PlacementRequest extends Resources {
  availabilityZone?: string | null | undefined;
  image?: ImageRequirements | undefined;
  group?: GroupContext | null | undefined;
  /** Hosts this request already failed on (a reschedule), with why. */
  excludeHosts?: Record<string, string> | undefined;
  /** Only this host will do (e.g. where the server's volumes live), with why. */
  requiredHost?: { name: string; why: string } | null | undefined;
}

export interface SchedulerConfig {
  /** spread: most free RAM first (Nova's default); pack: least free RAM first. */
  ramWeigher: 'spread' | 'pack';
  ramWeight: number;
  /** Subtracted from the weight of a host whose last build failed within `buildFailureWindowSeconds`. */
  buildFailurePenalty: number;
  buildFailureWindowSeconds: number;
  /** Weight of the soft group policies (per normalised member count). */
  softGroupWeight: number;
}

export const DEFAULT_SCHEDULER_CONFIG: SchedulerConfig = {
  ramWeigher: 'spread',
  ramWeight: 1,
  buildFailurePenalty: 10,
  buildFailureWindowSeconds: 600,
  softGroupWeight: 2,
};

export interface Rejection {
  host: string;
  filter: string;
  reason: string;
}

export interface WeighedHost {
  host: string;
  weight: number;
  /** Each weigher's contribution. */
  parts: Record<string, number>;
}

export interface Decision {
  /** The best host, or null when none passed the filters. */
  host: string | null;
  /** The other hosts that passed, best first (where a failed claim or a reschedule goes next). */
  alternates: string[];
  weights: WeighedHost[];
  rejected: Rejection[];
}

/** Capacity × ratio, rounded down: what may be claimed on the host in all. */
export function allocatable(host: Pick<HostState, 'capacity' | 'ratios'>): Resources {
  return {
    vcpus: Math.floor(host.capacity.vcpus * host.ratios.cpu),
    ramMb: Math.floor(host.capacity.ramMb * host.ratios.ram),
    diskGb: Math.floor(host.capacity.diskGb * host.ratios.disk),
  };
}

export function free(host: Pick<HostState, 'capacity' | 'ratios' | 'claimed'>): Resources {
  const total = allocatable(host);
  return { vcpus: total.vcpus - host.claimed.vcpus, ramMb: total.ramMb - host.claimed.ramMb, diskGb: total.diskGb - host.claimed.diskGb };
}

/** What the request needs once the image's minimums are applied. */
export function demand(req: PlacementRequest): Resources {
  return {
    vcpus: req.vcpus,
    ramMb: Math.max(req.ramMb, req.image?.minRamMb ?? 0),
    diskGb: Math.max(req.diskGb, req.image?.minDiskGb ?? 0),
  };
}

type Filter = (host: HostState, req: PlacementRequest) => string | undefined;

function resourceFilter(key: keyof Resources, unit: string, ratioKey: keyof AllocationRatios): Filter {
  return (host, req) => {
    const wanted = demand(req)[key];
    if (wanted === 0) return undefined;
    const left = free(host)[key];
    if (wanted <= left) return undefined;
    const u = unit ? ` ${unit}` : '';
    return `free ${Math.max(left, 0)}${u} < ${wanted}${u} requested (${host.capacity[key]}${u} × ${host.ratios[ratioKey]} − ${host.claimed[key]}${u} claimed)`;
  };
}

function capability(host: HostState, ...keys: string[]): string | undefined {
  for (const k of keys) {
    const v = host.capabilities[k];
    if (typeof v === 'string' && v) return v;
  }
  return undefined;
}

/** The filters, in the order they run; the first that rejects a host names the reason. */
export const FILTERS: ReadonlyArray<readonly [string, Filter]> = [
  ['required_host', (h, r) => (r.requiredHost && r.requiredHost.name !== h.name ? `not ${r.requiredHost.name} (${r.requiredHost.why})` : undefined)],
  ['retry', (h, r) => (r.excludeHosts && h.name in r.excludeHosts ? `failed this request already (${r.excludeHosts[h.name]})` : undefined)],
  ['enabled', (h) => (h.enabled ? undefined : 'disabled by an administrator')],
  ['alive', (h) => (h.alive ? undefined : 'host agent is down')],
  [
    'availability_zone',
    (h, r) => (r.availabilityZone && r.availabilityZone !== h.availabilityZone ? `in zone ${h.availabilityZone}, not ${r.availabilityZone}` : undefined),
  ],
  [
    'image_properties',
    (h, r) => {
      const arch = r.image?.architecture;
      const hostArch = capability(h, 'architecture', 'arch');
      if (arch && hostArch && arch !== hostArch) return `architecture ${hostArch}, image wants ${arch}`;
      if (arch && !hostArch) return `architecture unknown, image wants ${arch}`;
      const hv = r.image?.hypervisorType;
      const hostHv = capability(h, 'driver', 'hypervisor_type');
      if (hv && hv.toLowerCase() !== (hostHv ?? '').toLowerCase()) return `hypervisor ${hostHv ?? 'unknown'}, image wants ${hv}`;
      return undefined;
    },
  ],
  ['vcpu', resourceFilter('vcpus', '', 'cpu')],
  ['ram', resourceFilter('ramMb', 'MiB', 'ram')],
  ['disk', resourceFilter('diskGb', 'GiB', 'disk')],
  [
    'server_group',
    (h, r) => {
      const g = r.group;
      if (!g) return undefined;
      if (g.policy === 'anti-affinity' && g.memberHosts.includes(h.name)) {
        return `anti-affinity: a member of group ${g.name} is already on this host`;
      }
      if (g.policy === 'affinity' && g.memberHosts.length > 0 && !g.memberHosts.includes(h.name)) {
        return `affinity: group ${g.name} is on ${[...new Set(g.memberHosts)].sort().join(', ')}`;
      }
      return undefined;
    },
  ],
];

/** Why the host cannot take the request (the first filter that says no), or undefined when it can. */
export function checkHost(host: HostState, req: PlacementRequest): Rejection | undefined {
  for (const [filter, check] of FILTERS) {
    const reason = check(host, req);
    if (reason !== undefined) return { host: host.name, filter, reason };
  }
  return undefined;
}

/** Scales values to [0, 1] (all equal → all 0), as Nova's weighers do before multiplying. */
function normalise(values: number[]): number[] {
  const min = Math.min(...values);
  const max = Math.max(...values);
  return values.map((v) => (max === min ? 0 : (v - min) / (max - min)));
}

/** Weighs the hosts that passed the filters: highest weight first, ties by name. */
export function weigh(passed: HostState[], req: PlacementRequest, config: SchedulerConfig, now: number): WeighedHost[] {
  if (passed.length === 0) return [];
  const ram = normalise(passed.map((h) => free(h).ramMb));
  const sign = config.ramWeigher === 'spread' ? 1 : -1;
  const g = req.group;
  const soft = g && (g.policy === 'soft-affinity' || g.policy === 'soft-anti-affinity');
  const members = soft ? normalise(passed.map((h) => g.memberHosts.filter((m) => m === h.name).length)) : [];
  return passed
    .map((h, i) => {
      const parts: Record<string, number> = { ram: round(sign * config.ramWeight * ram[i]!) };
      const failedAt = h.lastBuildFailureAt;
      if (failedAt !== null && now - failedAt < config.buildFailureWindowSeconds * 1000) parts.build_failure = -config.buildFailurePenalty;
      if (soft) parts[g.policy] = round((g.policy === 'soft-affinity' ? 1 : -1) * config.softGroupWeight * members[i]!);
      const weight = round(Object.values(parts).reduce((a, b) => a + b, 0));
      return { host: h.name, weight, parts };
    })
    .sort((a, b) => b.weight - a.weight || a.host.localeCompare(b.host));
}

function round(n: number): number {
  return Math.round(n * 1e6) / 1e6 + 0; // + 0 turns -0 into 0
}

/** Filters, then weighs: the decision for one request. */
export function schedule(hosts: readonly HostState[], req: PlacementRequest, config: SchedulerConfig = DEFAULT_SCHEDULER_CONFIG, now = 0): Decision {
  const rejected: Rejection[] = [];
  const passed: HostState[] = [];
  for (const h of hosts) {
    const r = checkHost(h, req);
    if (r) rejected.push(r);
    else passed.push(h);
  }
  const weights = weigh(passed, req, config, now);
  return { host: weights[0]?.host ?? null, alternates: weights.slice(1).map((w) => w.host), weights, rejected };
}

/** One line per rejected host, sorted by host: "host-b: ram: free 512 MiB < 2048 MiB requested (…)". */
export function explainRejections(rejected: readonly Rejection[]): string {
  if (rejected.length === 0) return 'no host agent has registered';
  return [...rejected]
    .sort((a, b) => a.host.localeCompare(b.host))
    .map((r) => `${r.host}: ${r.filter}: ${r.reason}`)
    .join('; ');
}

/** Image properties the scheduler looks at, from Glance-style keys. */
export function imageRequirements(image: { minRamMb?: number; minDiskGb?: number; properties?: Record<string, string> }): ImageRequirements {
  const p = image.properties ?? {};
  return {
    architecture: p.architecture ?? p.hw_architecture,
    hypervisorType: p.hypervisor_type ?? p.img_hv_type,
    ...(image.minRamMb ? { minRamMb: image.minRamMb } : {}),
    ...(image.minDiskGb ? { minDiskGb: image.minDiskGb } : {}),
  };
}
