/**
 * What a chaos scenario left behind, counted from the sources of truth: the database (rows), libvirt
 * (domains, pool volumes, DHCP reservations) and Temporal (running workflows).
 *
 * Scoped to one scenario: its servers are the rows named `<prefix>-*`, its volumes the rows named
 * after them; domains and pool volumes count when they carry one of those ids; DHCP reservations
 * count when they are new since a snapshot taken before the scenario and belong to no other
 * server's port. "Leaked" = held by something that is not an ACTIVE server of the scenario.
 */
import type { Client } from '@temporalio/client';
import type { Knex } from 'knex';
import type { Hypervisor } from '../../libvirt';

export interface LibvirtSnapshot {
  domains: Set<string>;
  /** `<pool>/<volume>` */
  poolVolumes: Set<string>;
  /** `<network> <mac>` */
  dhcp: Set<string>;
}

export async function snapshotLibvirt(hv: Hypervisor, pools: string[]): Promise<LibvirtSnapshot> {
  const domains = new Set(await hv.listDomains());
  const poolVolumes = new Set<string>();
  for (const pool of pools) {
    for (const v of await hv.listVolumes(pool).catch(() => [])) poolVolumes.add(`${pool}/${v.name}`);
  }
  const dhcp = new Set<string>();
  for (const network of await hv.listNetworks()) {
    for (const h of await hv.networkDhcpHosts(network).catch(() => [])) dhcp.add(`${network} ${h.mac}`);
  }
  return { domains, poolVolumes, dhcp };
}

export interface ServerRow {
  id: string;
  name: string;
  status: string;
  task_state: string | null;
  host: string | null;
  fault: unknown;
}

export interface Census {
  servers: ServerRow[];
  active: number;
  error: number;
  /** Still BUILD (or a task running) */
  stuck: number;
  /** Names with more than one live server row */
  duplicates: number;
  leaked: {
    ports: number;
    ips: number;
    volumes: number;
    claims: number;
    domains: number;
    disks: number;
    workflows: number;
    operations: number;
  };
  /** Rows of the leftovers ledger about these servers (GET /v1/leftovers); null when the API has none. */
  leftovers: number | null;
  /** Leaked pool volumes per pool (to tell a dead host's share apart). */
  disksByPool: Record<string, number>;
}

export async function takeCensus(opts: {
  db: Knex;
  hv: Hypervisor;
  temporal: Client;
  prefix: string;
  before: LibvirtSnapshot;
  pools: string[];
  leftovers: () => Promise<Array<Record<string, unknown>> | null>;
}): Promise<Census> {
  const { db, hv, temporal, prefix, before, pools } = opts;
  const servers: ServerRow[] = await db('servers').where('name', 'like', `${prefix}-%`).select('id', 'name', 'status', 'task_state', 'host', 'fault');
  const ids = servers.map((s) => s.id);
  const activeIds = new Set(servers.filter((s) => s.status === 'ACTIVE' && s.task_state === null).map((s) => s.id));
  const live = servers.filter((s) => s.status !== 'DELETED');
  const byName = new Map<string, number>();
  for (const s of live) byName.set(s.name, (byName.get(s.name) ?? 0) + 1);

  const ports: Array<{ device_id: string | null; fixed_ip: string; mac: string }> = ids.length
    ? await db('ports').whereIn('device_id', ids).select('device_id', 'fixed_ip', 'mac')
    : [];
  const leakedPorts = ports.filter((p) => !activeIds.has(p.device_id ?? ''));
  const activeMacs = new Set(ports.filter((p) => activeIds.has(p.device_id ?? '')).map((p) => p.mac.toLowerCase()));
  const volumes: Array<{ id: string; name: string; status: string; server_id: string | null }> = await db('volumes')
    .where('name', 'like', 'server-%')
    .select('id', 'name', 'status', 'server_id');
  const ours = volumes.filter((v) => ids.some((id) => v.name.startsWith(`server-${id.slice(0, 8)}-`)));
  const leakedVolumes = ours.filter((v) => v.status !== 'deleted' && !(v.server_id && activeIds.has(v.server_id) && v.status === 'in-use'));
  const activeVolumeIds = new Set(ours.filter((v) => v.server_id && activeIds.has(v.server_id)).map((v) => v.id));
  /** Whose disks count here: this scenario's servers and their volumes (deleted rows included). */
  const owners = new Set([...ids, ...ours.map((v) => v.id)]);
  const otherMacs = new Set(
    ((await db('ports').whereNotNull('device_id').select('device_id', 'mac')) as Array<{ device_id: string; mac: string }>)
      .filter((p) => !ids.includes(p.device_id))
      .map((p) => p.mac.toLowerCase()),
  );
  const claims: Array<{ server_id: string }> = ids.length ? await db('host_claims').whereIn('server_id', ids).select('server_id') : [];
  const operations: Array<{ resource_id: string }> = ids.length
    ? await db('operations').whereIn('resource_id', ids).where({ status: 'running' }).select('resource_id')
    : [];

  const now = await snapshotLibvirt(hv, pools);
  const isOurs = (name: string) => ids.some((id) => name.includes(id));
  const leakedDomains = [...now.domains].filter((d) => !before.domains.has(d) && !activeIds.has(d.replace(/^stratus-/, '')));
  const disksByPool: Record<string, number> = {};
  let leakedDisks = 0;
  for (const pv of now.poolVolumes) {
    if (before.poolVolumes.has(pv)) continue;
    const [pool, name] = pv.split('/') as [string, string];
    const owner = name.replace(/^(root|volume)-/, '');
    if (!owners.has(owner) || activeIds.has(owner) || activeVolumeIds.has(owner)) continue;
    leakedDisks += 1;
    disksByPool[pool] = (disksByPool[pool] ?? 0) + 1;
  }
  const leakedDhcp = [...now.dhcp].filter((d) => {
    const mac = d.split(' ')[1]!.toLowerCase();
    return !before.dhcp.has(d) && !activeMacs.has(mac) && !otherMacs.has(mac);
  });

  let workflows = 0;
  for await (const wf of temporal.workflow.list({ query: 'ExecutionStatus="Running"' })) {
    if (!isOurs(wf.workflowId)) continue;
    const meterOfActive = [...activeIds].some((id) => wf.workflowId === `meter:${id}`);
    if (!meterOfActive) workflows += 1;
  }
  const ledger = await opts.leftovers();
  return {
    servers,
    active: activeIds.size,
    error: servers.filter((s) => s.status === 'ERROR' && s.task_state === null).length,
    stuck: servers.filter((s) => s.status === 'BUILD' || (s.task_state !== null && s.status !== 'DELETED')).length,
    duplicates: [...byName.values()].filter((n) => n > 1).reduce((a, n) => a + n - 1, 0),
    leaked: {
      ports: leakedPorts.length,
      ips: new Set(leakedPorts.map((p) => p.fixed_ip)).size + leakedDhcp.length,
      volumes: leakedVolumes.length,
      claims: claims.filter((c) => !activeIds.has(c.server_id)).length,
      domains: leakedDomains.filter(isOursOrUnknown(ids)).length,
      disks: leakedDisks,
      workflows,
      operations: operations.length,
    },
    leftovers: ledger === null ? null : ledger.filter((l) => ids.some((id) => JSON.stringify(l).includes(id))).length,
    disksByPool,
  };
}

/** Domains of this scenario's servers, or stratus domains of no known server (never another run's). */
function isOursOrUnknown(ids: string[]) {
  return (domain: string) => ids.some((id) => domain === `stratus-${id}`);
}

export function totalLeaked(c: Census): number {
  return Object.values(c.leaked).reduce((a, n) => a + n, 0);
}
