/** Networks (Neutron): a project's L2 segment; subnets and ports hang off it. */
import { Conflict, NotFound } from '../../core/errors';
import { distinctUuids } from '../batch';
import { atDbEdge, conflict, insertedRow, missing } from '../errors';
import { isUuid, newId } from '../ids';
import { applyFilters, type ColumnFilters } from '../filters';
import { byCreation, paginate } from '../pagination';
import type { Page, PageRequest, Queryable } from '../types';

export interface Network {
  id: string;
  projectId: string;
  name: string;
  createdAt: Date;
}

interface NetworkRow {
  id: string;
  project_id: string;
  name: string;
  created_at: Date;
}

const COLUMNS = ['id', 'project_id', 'name', 'created_at'];

function toNetwork(row: NetworkRow): Network {
  return { id: row.id, projectId: row.project_id, name: row.name, createdAt: row.created_at };
}

const notFound = (id: string) => new NotFound(`network '${id}' not found`);

export interface NewNetwork {
  id?: string;
  projectId: string;
  name: string;
}

/** Throws Conflict when the project already has a network of that name, NotFound when the project does not exist. */
export async function create(db: Queryable, input: NewNetwork): Promise<Network> {
  if (!isUuid(input.projectId)) throw missing('project_id', `project '${input.projectId}' not found`)();
  const rows = await atDbEdge<NetworkRow[]>(
    () =>
      db('networks')
        .insert({ id: input.id ?? newId(), project_id: input.projectId, name: input.name })
        .returning(COLUMNS),
    {
      networks_project_id_name_key: conflict('name', `the project already has a network named '${input.name}'`),
      networks_pkey: conflict('id', `network '${input.id ?? ''}' already exists`),
      networks_project_id_fkey: missing('project_id', `project '${input.projectId}' not found`),
    },
  );
  return toNetwork(insertedRow(rows));
}

export async function get(db: Queryable, id: string): Promise<Network | null> {
  if (!isUuid(id)) return null;
  const row = (await db('networks').select(COLUMNS).where({ id }).first()) as NetworkRow | undefined;
  return row ? toNetwork(row) : null;
}

export type NetworkFilters = ColumnFilters<'id' | 'name'>;

/** Ordered by creation; `projectId` and `filters` (exact) filter. */
export function list(db: Queryable, page: PageRequest & { projectId?: string; filters?: NetworkFilters }): Promise<Page<Network>> {
  if (page.projectId !== undefined && !isUuid(page.projectId)) return Promise.resolve({ items: [], next: null });
  const q = db('networks').select(COLUMNS);
  if (page.projectId !== undefined) q.where('project_id', page.projectId);
  applyFilters(q, 'networks', page.filters ?? {}, { id: 'uuid', name: 'text' });
  return paginate(db, q, byCreation('networks'), page, toNetwork);
}

/** Renames the network. Throws NotFound, or Conflict when the project already has a network of that name. */
export async function rename(db: Queryable, id: string, name: string): Promise<Network> {
  if (!isUuid(id)) throw notFound(id);
  const [row] = await atDbEdge<NetworkRow[]>(() => db('networks').where({ id }).update({ name }).returning(COLUMNS), {
    networks_project_id_name_key: conflict('name', `the project already has a network named '${name}'`),
  });
  if (!row) throw notFound(id);
  return toNetwork(row);
}

/**
 * Deletes the network with its subnets (cascade). Throws NotFound, or Conflict while ports exist on
 * it: the ports' foreign keys refuse the delete, so a port created meanwhile cannot be orphaned.
 */
export async function remove(db: Queryable, id: string): Promise<void> {
  if (!isUuid(id)) throw notFound(id);
  const hasPorts = () => new Conflict(`network '${id}' has ports: delete them first`);
  const count = await atDbEdge(() => db('networks').where({ id }).delete(), {
    ports_network_id_fkey: hasPorts,
    ports_subnet_id_fkey: hasPorts,
  });
  if (count === 0) throw notFound(id);
}

export { remove as delete };

/** The networks of `ids` (a page's worth, in one query), by id; unknown ids are absent. */
export async function getMany(db: Queryable, ids: readonly string[]): Promise<Map<string, Network>> {
  const wanted = distinctUuids(ids);
  if (wanted.length === 0) return new Map();
  const rows = (await db('networks').select(COLUMNS).whereIn('id', wanted)) as NetworkRow[];
  return new Map(rows.map((row) => [row.id, toNetwork(row)]));
}
