/**
 * Ports (Neutron): a NIC on a network with a MAC and a fixed IP from one of the network's subnets.
 *
 * IP allocation is safe under any concurrency, in the database: each allocation runs in a
 * transaction holding a transaction-scoped advisory lock keyed on the subnet, picks the lowest
 * address of the subnet's pools that no port holds (one SQL statement, no enumeration of the pool),
 * and inserts it; unique (subnet_id, fixed_ip) is the last guard should anything bypass the lock.
 */
import { randomBytes } from 'node:crypto';
import { Conflict, InvalidInput, NotFound } from '../../core/errors';
import { atDbEdge, conflict, insertedRow, missing } from '../errors';
import { distinctUuids, groupBy } from '../batch';
import { isUuid, newId } from '../ids';
import { broadcast, contains, parseCidr, parseIpv4 } from '../ipv4';
import { applyFilters, type ColumnFilters } from '../filters';
import { byCreation, paginate } from '../pagination';
import type { Page, PageRequest, Queryable } from '../types';

export type PortStatus = 'DOWN' | 'ACTIVE';
export type DeviceOwner = 'compute';

export interface Port {
  id: string;
  projectId: string;
  networkId: string;
  subnetId: string;
  /** Free-form; '' when none was given. */
  name: string;
  /** `fa:16:3e:xx:xx:xx` */
  mac: string;
  /** Dotted quad, no mask. */
  fixedIp: string;
  /** The server the port is bound to, or null. */
  deviceId: string | null;
  deviceOwner: DeviceOwner | null;
  /** True when a server create made the port (so deleting the server deletes it); false for a user-made port. */
  createdByServer: boolean;
  status: PortStatus;
  createdAt: Date;
}

interface PortRow {
  id: string;
  project_id: string;
  network_id: string;
  subnet_id: string;
  name: string;
  mac: string;
  fixed_ip: string;
  device_id: string | null;
  device_owner: DeviceOwner | null;
  created_by_server: boolean;
  status: PortStatus;
  created_at: Date;
}

/** fixed_ip reads as a plain address on both engines (a /32 inet shows no mask; a check keeps it /32). */
const COLUMNS = ['id', 'project_id', 'network_id', 'subnet_id', 'name', 'mac', 'fixed_ip', 'device_id', 'device_owner', 'created_by_server', 'status', 'created_at'];

function toPort(row: PortRow): Port {
  return {
    id: row.id,
    projectId: row.project_id,
    networkId: row.network_id,
    subnetId: row.subnet_id,
    name: row.name,
    mac: row.mac,
    fixedIp: row.fixed_ip,
    deviceId: row.device_id,
    deviceOwner: row.device_owner,
    createdByServer: row.created_by_server,
    status: row.status,
    createdAt: row.created_at,
  };
}

const notFound = (id: string) => new NotFound(`port '${id}' not found`);

/** OpenStack's MAC prefix (fa:16:3e) and three random bytes. */
export function randomMac(): string {
  return `fa:16:3e:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
}

/** Advisory lock namespace (first key of the two-int form) for subnet allocation: 'IPAM'. */
const IPAM_LOCK_CLASS = 0x4950_414d;
/** Second key: the subnet id's first 32 bits (a shared key between two subnets only costs some waiting). */
function subnetLockKey(subnetId: string): number {
  return Number.parseInt(subnetId.slice(0, 8), 16) | 0;
}

async function lockSubnet(trx: Queryable, subnetId: string): Promise<void> {
  await trx.raw('select pg_advisory_xact_lock(?::int, ?::int)', [IPAM_LOCK_CLASS, subnetLockKey(subnetId)]);
}

/**
 * The lowest address of the subnet's pools that no port holds, or null when the pools are full.
 * Candidates are each pool's start and the address after each held one; the first candidate that
 * is inside a pool and not held is the answer. Cost grows with the ports, not with the pool size.
 */
const LOWEST_FREE_SQL = `
  with pools as (
    select (p ->> 'start')::inet as first, (p ->> 'end')::inet as last
    from subnets s, jsonb_array_elements(s.allocation_pools) p
    where s.id = :subnetId
  ),
  held as (
    select fixed_ip from ports where subnet_id = :subnetId
  ),
  candidates as (
    select first as ip from pools
    union
    select held.fixed_ip + 1 from held join pools on held.fixed_ip >= pools.first and held.fixed_ip < pools.last
  )
  select host(c.ip) as ip
  from candidates c
  where exists (select 1 from pools where c.ip between pools.first and pools.last)
    and not exists (select 1 from held where held.fixed_ip = c.ip)
  order by c.ip
  limit 1`;

async function lowestFree(trx: Queryable, subnetId: string): Promise<string | null> {
  const result = (await trx.raw(LOWEST_FREE_SQL, { subnetId })) as { rows: Array<{ ip: string }> };
  return result.rows[0]?.ip ?? null;
}

interface SubnetForIpam {
  id: string;
  cidr: string;
  gateway_ip: string | null;
}

export interface NewPort {
  id?: string;
  projectId: string;
  networkId: string;
  name?: string;
  /** A specific address: must be inside a subnet of the network (not its network, broadcast or gateway address) and free. */
  fixedIp?: string;
  deviceId?: string | null;
  deviceOwner?: DeviceOwner | null;
  createdByServer?: boolean;
}

const MAC_ATTEMPTS = 8;

/**
 * Creates a port with a random MAC and an address: `fixedIp` when given, else the lowest free
 * address of the first subnet (oldest first) that has one. Runs in its own transaction (a savepoint
 * inside a caller's), holding the subnet's advisory lock until that transaction ends.
 * Throws NotFound (network_id), InvalidInput (fixed_ip outside the network's subnets or reserved),
 * Conflict (fixed_ip taken; "no free IP address on network X"; network without subnets).
 */
export async function create(db: Queryable, input: NewPort): Promise<Port> {
  const networkMissing = missing('network_id', `network '${input.networkId}' not found`);
  if (!isUuid(input.networkId)) throw networkMissing();
  if (!isUuid(input.projectId)) throw missing('project_id', `project '${input.projectId}' not found`)();

  return db.transaction(async (trx) => {
    const network = await trx('networks').select('id').where({ id: input.networkId }).first();
    if (!network) throw networkMissing();
    const subnets = (await trx('subnets')
      .select(['id', 'cidr', 'gateway_ip'])
      .where({ network_id: input.networkId })
      .orderBy([{ column: 'created_at' }, { column: 'id' }])) as SubnetForIpam[];
    if (subnets.length === 0) throw new Conflict(`network '${input.networkId}' has no subnet to take an address from`);

    if (input.fixedIp !== undefined) {
      const subnet = subnetFor(subnets, input.fixedIp, input.networkId);
      await lockSubnet(trx, subnet.id);
      const taken = await trx('ports').select('id').where({ subnet_id: subnet.id, fixed_ip: input.fixedIp }).first();
      if (taken) throw ipTaken(input.fixedIp)();
      return insertPort(trx, input, subnet.id, input.fixedIp);
    }

    for (const subnet of subnets) {
      await lockSubnet(trx, subnet.id);
      const ip = await lowestFree(trx, subnet.id);
      if (ip !== null) return insertPort(trx, input, subnet.id, ip);
    }
    throw new Conflict(`no free IP address on network '${input.networkId}'`);
  });
}

const ipTaken = (ip: string) => conflict('fixed_ip', `IP address ${ip} is already in use`);

/** The subnet containing `fixedIp`, refusing addresses a port may not hold. */
function subnetFor(subnets: readonly SubnetForIpam[], fixedIp: string, networkId: string): SubnetForIpam {
  const invalid = (message: string) => new InvalidInput(message, [{ field: 'fixed_ip', message }]);
  const ip = parseIpv4(fixedIp);
  if (ip === undefined) throw invalid(`'${fixedIp}' is not an IPv4 address`);
  for (const subnet of subnets) {
    const parsed = parseCidr(subnet.cidr);
    if (!parsed.ok || !contains(parsed.value, ip)) continue;
    if (ip === parsed.value.network || ip === broadcast(parsed.value)) {
      throw invalid(`${fixedIp} is the network or broadcast address of ${subnet.cidr}`);
    }
    if (subnet.gateway_ip !== null && parseIpv4(subnet.gateway_ip) === ip) throw invalid(`${fixedIp} is the gateway of ${subnet.cidr}`);
    return subnet;
  }
  throw invalid(`${fixedIp} is not inside any subnet of network '${networkId}'`);
}

/** Inserts with a fresh MAC, drawing another on the (unlikely) clash; on conflict do nothing keeps the transaction usable. */
async function insertPort(trx: Queryable, input: NewPort, subnetId: string, fixedIp: string): Promise<Port> {
  const id = input.id ?? newId();
  for (let attempt = 0; attempt < MAC_ATTEMPTS; attempt++) {
    const rows = await atDbEdge<PortRow[]>(
      () =>
        trx('ports')
          .insert({
            id,
            project_id: input.projectId,
            network_id: input.networkId,
            subnet_id: subnetId,
            name: input.name ?? '',
            mac: randomMac(),
            fixed_ip: fixedIp,
            device_id: input.deviceId ?? null,
            device_owner: input.deviceOwner ?? null,
            created_by_server: input.createdByServer ?? false,
          })
          .onConflict('mac')
          .ignore()
          .returning(COLUMNS),
      {
        ports_pkey: conflict('id', `port '${id}' already exists`),
        ports_subnet_id_fixed_ip_key: ipTaken(fixedIp),
        ports_project_id_fkey: missing('project_id', `project '${input.projectId}' not found`),
        ports_network_id_fkey: missing('network_id', `network '${input.networkId}' not found`),
        ports_subnet_id_fkey: () => new Conflict(`the subnet of network '${input.networkId}' was deleted meanwhile`),
      },
    );
    if (rows.length > 0) return toPort(insertedRow(rows));
  }
  throw new Error(`no unused MAC address after ${MAC_ATTEMPTS} attempts`);
}

export async function get(db: Queryable, id: string): Promise<Port | null> {
  if (!isUuid(id)) return null;
  const row = (await db('ports').select(COLUMNS).where({ id }).first()) as PortRow | undefined;
  return row ? toPort(row) : null;
}

export type PortFilters = ColumnFilters<'id' | 'name' | 'network_id' | 'subnet_id' | 'device_id' | 'device_owner' | 'status' | 'mac' | 'fixed_ip'>;

/** Ordered by creation; `projectId`, `networkId`, `deviceId` and `filters` (exact) filter. */
export function list(
  db: Queryable,
  page: PageRequest & { projectId?: string; networkId?: string; deviceId?: string; filters?: PortFilters },
): Promise<Page<Port>> {
  const filters = { project_id: page.projectId, network_id: page.networkId, device_id: page.deviceId };
  const q = db('ports').select(COLUMNS);
  for (const [column, value] of Object.entries(filters)) {
    if (value === undefined) continue;
    if (!isUuid(value)) return Promise.resolve({ items: [], next: null });
    q.where(column, value);
  }
  applyFilters(q, 'ports', page.filters ?? {}, {
    id: 'uuid',
    name: 'text',
    network_id: 'uuid',
    subnet_id: 'uuid',
    device_id: 'uuid',
    device_owner: 'text',
    status: 'text',
    mac: 'text',
    fixed_ip: 'inet',
  });
  return paginate(db, q, byCreation('ports'), page, toPort);
}

/** The ports bound to a server, oldest first (the order of its NICs). */
export async function listByDevice(db: Queryable, deviceId: string): Promise<Port[]> {
  return (await listByDevices(db, [deviceId])).get(deviceId) ?? [];
}

/** The ports bound to each of `deviceIds` (a page of servers, in one query), oldest first per server. */
export async function listByDevices(db: Queryable, deviceIds: readonly string[]): Promise<Map<string, Port[]>> {
  const wanted = distinctUuids(deviceIds);
  if (wanted.length === 0) return new Map();
  const rows = (await db('ports')
    .select(COLUMNS)
    .whereIn('device_id', wanted)
    .orderBy([{ column: 'created_at' }, { column: 'id' }])) as PortRow[];
  return groupBy(rows.map(toPort), (p) => p.deviceId as string);
}

/**
 * Binds the port to a server (device_owner 'compute'). One conditional update: idempotent for the
 * same server; Conflict when the port is bound to another device; NotFound when absent.
 */
export async function bind(db: Queryable, portId: string, serverId: string): Promise<Port> {
  if (!isUuid(portId)) throw notFound(portId);
  if (!isUuid(serverId)) throw new InvalidInput(`'${serverId}' is not a server id`, [{ field: 'device_id', message: 'not a uuid' }]);
  const [row] = (await db('ports')
    .where({ id: portId })
    .whereRaw('(device_id is null or device_id = ?)', [serverId])
    .update({ device_id: serverId, device_owner: 'compute' })
    .returning(COLUMNS)) as PortRow[];
  if (row) return toPort(row);
  const current = await get(db, portId);
  if (!current) throw notFound(portId);
  throw new Conflict(`port '${portId}' is in use by device '${current.deviceId ?? ''}'`, [{ field: 'port_id', message: 'in use' }]);
}

/**
 * Clears the port's binding (and sets it DOWN). With `serverId`, only when bound to that server, so a
 * late compensation cannot unbind a port that moved on. True when a binding was cleared; false when
 * the port is absent, unbound, or bound elsewhere (idempotent).
 */
export async function unbind(db: Queryable, portId: string, serverId?: string): Promise<boolean> {
  if (!isUuid(portId) || (serverId !== undefined && !isUuid(serverId))) return false;
  const q = db('ports').where({ id: portId }).whereNotNull('device_id');
  if (serverId !== undefined) q.where('device_id', serverId);
  const count = await q.update({ device_id: null, device_owner: null, status: 'DOWN' });
  return count > 0;
}

/** Sets the port's status (ACTIVE once the host plugged it). Throws NotFound. */
export async function setStatus(db: Queryable, portId: string, status: PortStatus): Promise<Port> {
  if (!isUuid(portId)) throw notFound(portId);
  const [row] = (await db('ports').where({ id: portId }).update({ status }).returning(COLUMNS)) as PortRow[];
  if (!row) throw notFound(portId);
  return toPort(row);
}

/** Renames the port (its name is free-form). Throws NotFound. */
export async function rename(db: Queryable, id: string, name: string): Promise<Port> {
  if (!isUuid(id)) throw notFound(id);
  const [row] = (await db('ports').where({ id }).update({ name }).returning(COLUMNS)) as PortRow[];
  if (!row) throw notFound(id);
  return toPort(row);
}

/** Deletes the port, freeing its address. Throws NotFound. */
export async function remove(db: Queryable, id: string): Promise<void> {
  const count = isUuid(id) ? await db('ports').where({ id }).delete() : 0;
  if (count === 0) throw notFound(id);
}

export { remove as delete };
