/** Hypervisor hosts: registered and kept 'up' by their agents' heartbeats. */
import { atDbEdge, insertedRow } from '../errors';
import { byName, paginate } from '../pagination';
import type { Page, PageRequest, Queryable } from '../types';

export type HostStatus = 'up' | 'down';

/**
 * A host is alive while it is up and its last heartbeat row is younger than this many intervals.
 * The host monitor workflow marks a host down after 3 missed heartbeats, from Temporal signals that a
 * database outage does not stop; the row's age is only the backstop for a monitor that is not running,
 * so it is twice as patient: while the database is down no heartbeat can be written, and with the
 * same bound every host looked dead right after it came back (chaos suite, PostgreSQL down 10 s: 8 of
 * 30 creates failed NoValidHost "host agent is down" with both agents running).
 */
export const MISSED_HEARTBEATS_ALLOWED = 6;

export function isAlive(host: Pick<Host, 'status' | 'lastSeenAt'>, heartbeatSeconds: number, now = Date.now()): boolean {
  return host.status === 'up' && now - new Date(host.lastSeenAt).getTime() < heartbeatSeconds * MISSED_HEARTBEATS_ALLOWED * 1000;
}

/** A registered host: what its agent last reported, plus liveness. */
export interface Host extends Heartbeat, HostSettings {
  status: HostStatus;
  registeredAt: Date;
  lastSeenAt: Date;
  /** When a build last failed on this host (the scheduler weighs it down for a while). */
  lastBuildFailureAt: Date | null;
}

/** What an administrator sets on a host (PATCH /v1/hosts/{name}). Null ratios: the configured defaults. */
export interface HostSettings {
  enabled: boolean;
  availabilityZone: string;
  cpuAllocationRatio: number | null;
  ramAllocationRatio: number | null;
  diskAllocationRatio: number | null;
}

interface HostRow {
  name: string;
  libvirt_uri: string;
  vcpus: number;
  ram_mb: number;
  disk_gb: number;
  capabilities: Record<string, unknown>;
  libvirt_version: string | null;
  status: HostStatus;
  registered_at: Date;
  last_seen_at: Date;
  enabled: boolean;
  availability_zone: string;
  cpu_allocation_ratio: number | null;
  ram_allocation_ratio: number | null;
  disk_allocation_ratio: number | null;
  last_build_failure_at: Date | null;
}

export const COLUMNS = [
  'name',
  'libvirt_uri',
  'vcpus',
  'ram_mb',
  'disk_gb',
  'capabilities',
  'libvirt_version',
  'status',
  'registered_at',
  'last_seen_at',
  'enabled',
  'availability_zone',
  'cpu_allocation_ratio',
  'ram_allocation_ratio',
  'disk_allocation_ratio',
  'last_build_failure_at',
];

/** A hosts row (all of COLUMNS) as a Host. */
export function toHost(row: HostRow): Host {
  return {
    name: row.name,
    libvirtUri: row.libvirt_uri,
    vcpus: row.vcpus,
    ramMb: row.ram_mb,
    diskGb: row.disk_gb,
    capabilities: row.capabilities,
    libvirtVersion: row.libvirt_version,
    status: row.status,
    registeredAt: row.registered_at,
    lastSeenAt: row.last_seen_at,
    enabled: row.enabled,
    availabilityZone: row.availability_zone,
    cpuAllocationRatio: ratio(row.cpu_allocation_ratio),
    ramAllocationRatio: ratio(row.ram_allocation_ratio),
    diskAllocationRatio: ratio(row.disk_allocation_ratio),
    lastBuildFailureAt: row.last_build_failure_at,
  };
}

/** double precision comes back as a number from PGlite and as a number or string from pg. */
function ratio(v: number | string | null): number | null {
  return v === null ? null : Number(v);
}

export interface Heartbeat {
  name: string;
  libvirtUri: string;
  vcpus: number;
  ramMb: number;
  diskGb: number;
  capabilities: Record<string, unknown>;
  libvirtVersion: string | null;
}

/**
 * Registers the host or refreshes it: capacity and capabilities as reported, status 'up',
 * last_seen_at = now(). One atomic statement (insert … on conflict do update): safe when heartbeats race.
 */
export async function upsertHeartbeat(db: Queryable, hb: Heartbeat): Promise<Host> {
  const values = {
    name: hb.name,
    libvirt_uri: hb.libvirtUri,
    vcpus: hb.vcpus,
    ram_mb: hb.ramMb,
    disk_gb: hb.diskGb,
    // Serialized here: both drivers accept JSON text for jsonb, and `pg` would turn a top-level array into a PostgreSQL array.
    capabilities: JSON.stringify(hb.capabilities),
    libvirt_version: hb.libvirtVersion,
    status: 'up',
    last_seen_at: db.fn.now(),
  };
  const rows = await atDbEdge<HostRow[]>(() =>
    db('hosts')
      .insert(values)
      .onConflict('name')
      .merge(['libvirt_uri', 'vcpus', 'ram_mb', 'disk_gb', 'capabilities', 'libvirt_version', 'status', 'last_seen_at'])
      .returning(COLUMNS),
  );
  return toHost(insertedRow(rows));
}

/**
 * Marks the host down. Idempotent, like the other state changes: true when it was up, false when it
 * was already down or is unknown (a workflow retrying this must not fail on a host removed meanwhile).
 */
export async function markDown(db: Queryable, name: string): Promise<boolean> {
  const count = await db('hosts').where({ name, status: 'up' }).update({ status: 'down' });
  return count > 0;
}

/** Marks down every up host not seen since `cutoff`; returns their names, sorted. */
export async function markStaleDown(db: Queryable, cutoff: Date): Promise<string[]> {
  const rows = (await db('hosts')
    .where('status', 'up')
    .where('last_seen_at', '<', cutoff)
    .update({ status: 'down' })
    .returning(['name'])) as Array<{ name: string }>;
  return rows.map((r) => r.name).sort();
}

export async function get(db: Queryable, name: string): Promise<Host | null> {
  const row = (await db('hosts').select(COLUMNS).where({ name }).first()) as HostRow | undefined;
  return row ? toHost(row) : null;
}

/** Ordered by name; `status` filters. */
export function list(db: Queryable, page: PageRequest & { status?: HostStatus }): Promise<Page<Host>> {
  const q = db('hosts').select(COLUMNS);
  if (page.status !== undefined) q.where('status', page.status);
  return paginate(db, q, byName, page, toHost);
}

const SETTING_COLUMNS: Record<keyof HostSettings, string> = {
  enabled: 'enabled',
  availabilityZone: 'availability_zone',
  cpuAllocationRatio: 'cpu_allocation_ratio',
  ramAllocationRatio: 'ram_allocation_ratio',
  diskAllocationRatio: 'disk_allocation_ratio',
};

/** Changes an administrator's settings of the host; null when there is no such host. */
export async function updateSettings(db: Queryable, name: string, patch: { [K in keyof HostSettings]?: HostSettings[K] | undefined }): Promise<Host | null> {
  const values = Object.fromEntries(
    Object.entries(patch)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [SETTING_COLUMNS[k as keyof HostSettings], v]),
  );
  if (Object.keys(values).length === 0) return get(db, name);
  const rows = await atDbEdge<HostRow[]>(() => db('hosts').where({ name }).update(values).returning(COLUMNS));
  return rows[0] ? toHost(rows[0]) : null;
}

/** Notes that a build failed on these hosts just now (idempotent enough: it only moves the time). */
export async function recordBuildFailure(db: Queryable, names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  await db('hosts').whereIn('name', names).update({ last_build_failure_at: db.fn.now() });
}

/** The availability zone of each of the hosts `names` (one query); unknown hosts are absent. */
export async function zonesOf(db: Queryable, names: readonly string[]): Promise<Map<string, string>> {
  const wanted = [...new Set(names)];
  if (wanted.length === 0) return new Map();
  const rows = (await db('hosts').select('name', 'availability_zone').whereIn('name', wanted)) as Array<{ name: string; availability_zone: string }>;
  return new Map(rows.map((row) => [row.name, row.availability_zone]));
}

/** Each availability zone with its hosts (name, status, enabled, last heartbeat), zones and hosts by name. */
export async function zones(db: Queryable): Promise<Array<{ zone: string; hosts: Array<Pick<Host, 'name' | 'status' | 'enabled' | 'lastSeenAt'>> }>> {
  const rows = (await db('hosts').select('name', 'status', 'enabled', 'last_seen_at', 'availability_zone').orderBy(['availability_zone', 'name'])) as Array<
    Pick<HostRow, 'name' | 'status' | 'enabled' | 'last_seen_at' | 'availability_zone'>
  >;
  const by = new Map<string, Array<Pick<Host, 'name' | 'status' | 'enabled' | 'lastSeenAt'>>>();
  for (const r of rows) {
    const list = by.get(r.availability_zone) ?? [];
    list.push({ name: r.name, status: r.status, enabled: r.enabled, lastSeenAt: r.last_seen_at });
    by.set(r.availability_zone, list);
  }
  return [...by].map(([zone, hosts]) => ({ zone, hosts }));
}

/** Whether any registered host is in the zone. */
export async function zoneExists(db: Queryable, zone: string): Promise<boolean> {
  return Boolean(await db('hosts').select('name').where({ availability_zone: zone }).first());
}
