/**
 * Subnets (Neutron): an IPv4 CIDR on a network, its gateway and the pools ports draw addresses from.
 * Validation (db/ipv4.ts planSubnet) names the API's fields: cidr, gateway_ip, allocation_pools,
 * dns_nameservers.
 */
import { Conflict, InvalidInput, NotFound } from '../../core/errors';
import { atDbEdge, conflict, insertedRow, missing } from '../errors';
import { distinctUuids, groupBy } from '../batch';
import { isUuid, newId } from '../ids';
import { cidrsOverlap, parseCidr, planSubnet } from '../ipv4';
import { applyFilters, type ColumnFilters } from '../filters';
import { byCreation, paginate } from '../pagination';
import type { Page, PageRequest, Queryable } from '../types';

export interface AllocationPool {
  start: string;
  end: string;
}

export interface Subnet {
  id: string;
  networkId: string;
  projectId: string;
  /** Free-form; '' when none was given. */
  name: string;
  /** Canonical `a.b.c.d/n`. */
  cidr: string;
  /** null when the subnet has no gateway. */
  gatewayIp: string | null;
  /** Sorted by start, non-overlapping, inside the CIDR, excluding network, broadcast and gateway. */
  allocationPools: AllocationPool[];
  dnsNameservers: string[];
  createdAt: Date;
}

interface SubnetRow {
  id: string;
  network_id: string;
  project_id: string;
  name: string;
  cidr: string;
  gateway_ip: string | null;
  allocation_pools: AllocationPool[];
  dns_nameservers: string[];
  created_at: Date;
}

/** inet and cidr columns read as text on both engines: `10.0.0.1` (a /32 inet shows no mask), `10.0.0.0/24`. */
const COLUMNS = ['id', 'network_id', 'project_id', 'name', 'cidr', 'gateway_ip', 'allocation_pools', 'dns_nameservers', 'created_at'];

function toSubnet(row: SubnetRow): Subnet {
  return {
    id: row.id,
    networkId: row.network_id,
    projectId: row.project_id,
    name: row.name,
    cidr: row.cidr,
    gatewayIp: row.gateway_ip,
    allocationPools: row.allocation_pools,
    dnsNameservers: row.dns_nameservers,
    createdAt: row.created_at,
  };
}

const notFound = (id: string) => new NotFound(`subnet '${id}' not found`);

export interface NewSubnet {
  id?: string;
  networkId: string;
  projectId: string;
  name?: string;
  cidr: string;
  /** Omitted: the first usable address. null: no gateway. */
  gatewayIp?: string | null;
  /** Omitted: every usable address except the gateway. */
  allocationPools?: AllocationPool[];
  dnsNameservers?: string[];
}

/**
 * Validates (InvalidInput naming cidr, gateway_ip, allocation_pools or dns_nameservers) and inserts.
 * The network row is locked while checking that the CIDR overlaps no other subnet of the network
 * (InvalidInput on cidr), so two overlapping subnets created at once cannot both pass.
 * Throws NotFound (field network_id) when the network does not exist.
 */
export async function create(db: Queryable, input: NewSubnet): Promise<Subnet> {
  const result = planSubnet(input);
  if (!result.ok) {
    throw new InvalidInput(result.problems.map((p) => p.message).join('; '), result.problems.map((p) => ({ field: p.field, message: p.message })));
  }
  const plan = result.plan;
  const networkMissing = missing('network_id', `network '${input.networkId}' not found`);
  if (!isUuid(input.networkId)) throw networkMissing();
  if (!isUuid(input.projectId)) throw missing('project_id', `project '${input.projectId}' not found`)();

  return db.transaction(async (trx) => {
    const network = await trx('networks').select('id').where({ id: input.networkId }).forUpdate().first();
    if (!network) throw networkMissing();
    const existing = (await trx('subnets').select(['id', trx.raw('cidr::text as cidr')]).where({ network_id: input.networkId })) as Array<{
      id: string;
      cidr: string;
    }>;
    const mine = parseCidr(plan.cidr);
    for (const other of existing) {
      const theirs = parseCidr(other.cidr);
      if (mine.ok && theirs.ok && cidrsOverlap(mine.value, theirs.value)) {
        throw new InvalidInput(`${plan.cidr} overlaps subnet ${other.id} (${other.cidr}) on the same network`, [
          { field: 'cidr', message: `overlaps ${other.cidr}` },
        ]);
      }
    }
    const rows = await atDbEdge<SubnetRow[]>(
      () =>
        trx('subnets')
          .insert({
            id: input.id ?? newId(),
            network_id: input.networkId,
            project_id: input.projectId,
            name: input.name ?? '',
            cidr: plan.cidr,
            gateway_ip: plan.gatewayIp,
            // JSON text: `pg` would turn a top-level array into a PostgreSQL array.
            allocation_pools: JSON.stringify(plan.allocationPools),
            dns_nameservers: JSON.stringify(plan.dnsNameservers),
          })
          .returning(COLUMNS),
      {
        subnets_pkey: conflict('id', `subnet '${input.id ?? ''}' already exists`),
        subnets_network_id_fkey: networkMissing,
        subnets_project_id_fkey: missing('project_id', `project '${input.projectId}' not found`),
      },
    );
    return toSubnet(insertedRow(rows));
  });
}

export async function get(db: Queryable, id: string): Promise<Subnet | null> {
  if (!isUuid(id)) return null;
  const row = (await db('subnets').select(COLUMNS).where({ id }).first()) as SubnetRow | undefined;
  return row ? toSubnet(row) : null;
}

/** Subnets of one network, oldest first (the order ports draw addresses in). */
export async function listByNetwork(db: Queryable, networkId: string): Promise<Subnet[]> {
  return (await listByNetworks(db, [networkId])).get(networkId) ?? [];
}

/** Subnets of each of `networkIds` (a page of networks, in one query), oldest first per network. */
export async function listByNetworks(db: Queryable, networkIds: readonly string[]): Promise<Map<string, Subnet[]>> {
  const wanted = distinctUuids(networkIds);
  if (wanted.length === 0) return new Map();
  const rows = (await db('subnets')
    .select(COLUMNS)
    .whereIn('network_id', wanted)
    .orderBy([{ column: 'created_at' }, { column: 'id' }])) as SubnetRow[];
  return groupBy(rows.map(toSubnet), (s) => s.networkId);
}

export type SubnetFilters = ColumnFilters<'id' | 'name' | 'network_id' | 'cidr' | 'gateway_ip'>;

/** Ordered by creation; `networkId`, `projectId` and `filters` (exact) filter. */
export function list(db: Queryable, page: PageRequest & { networkId?: string; projectId?: string; filters?: SubnetFilters }): Promise<Page<Subnet>> {
  if ((page.networkId !== undefined && !isUuid(page.networkId)) || (page.projectId !== undefined && !isUuid(page.projectId))) {
    return Promise.resolve({ items: [], next: null });
  }
  const q = db('subnets').select(COLUMNS);
  if (page.networkId !== undefined) q.where('network_id', page.networkId);
  if (page.projectId !== undefined) q.where('project_id', page.projectId);
  applyFilters(q, 'subnets', page.filters ?? {}, { id: 'uuid', name: 'text', network_id: 'uuid', cidr: 'cidr', gateway_ip: 'inet' });
  return paginate(db, q, byCreation('subnets'), page, toSubnet);
}

/** Renames the subnet (its name is free-form). Throws NotFound. */
export async function rename(db: Queryable, id: string, name: string): Promise<Subnet> {
  if (!isUuid(id)) throw notFound(id);
  const [row] = (await db('subnets').where({ id }).update({ name }).returning(COLUMNS)) as SubnetRow[];
  if (!row) throw notFound(id);
  return toSubnet(row);
}

/** Throws NotFound, or Conflict while ports hold addresses from it (their foreign key refuses the delete). */
export async function remove(db: Queryable, id: string): Promise<void> {
  if (!isUuid(id)) throw notFound(id);
  const count = await atDbEdge(() => db('subnets').where({ id }).delete(), {
    ports_subnet_id_fkey: () => new Conflict(`subnet '${id}' has ports: delete them first`),
  });
  if (count === 0) throw notFound(id);
}

export { remove as delete };
