/**
 * Volumes (Cinder). The status is Cinder's state machine and `transition` is its only door: one
 * conditional UPDATE … WHERE status IN (from), so of two racing transitions exactly one wins and the
 * other gets a Conflict naming the status it found.
 *
 *   creating → available | error;  available → reserved → attaching → in-use → detaching → available;
 *   available | error → deleting → deleted (or the row is removed).
 */
import { Conflict, InvalidInput, NotFound } from '../../core/errors';
import { atDbEdge, conflict, insertedRow, missing } from '../errors';
import { distinctUuids, groupBy } from '../batch';
import { isUuid, newId } from '../ids';
import { byCreation, paginate } from '../pagination';
import type { Page, PageRequest, Queryable } from '../types';

export const VOLUME_STATUSES = ['creating', 'available', 'reserved', 'attaching', 'in-use', 'detaching', 'deleting', 'error', 'deleted'] as const;
export type VolumeStatus = (typeof VOLUME_STATUSES)[number];

export interface Volume {
  id: string;
  projectId: string;
  name: string;
  sizeGb: number;
  status: VolumeStatus;
  /** The image it was created from; null when blank or once the image is deleted. */
  imageId: string | null;
  /** The host whose storage pool holds it, once created there. */
  host: string | null;
  /** The server it is attached (or being attached) to. */
  serverId: string | null;
  /** Target device on that server, e.g. vdb. */
  device: string | null;
  /** Deleted with the server it is attached to (boot volumes made by a server create). */
  deleteOnTermination: boolean;
  /** The zone the request asked for, or null (any zone). */
  availabilityZone: string | null;
  createdAt: Date;
  updatedAt: Date;
}

interface VolumeRow {
  id: string;
  project_id: string;
  name: string;
  size_gb: number;
  status: VolumeStatus;
  image_id: string | null;
  host: string | null;
  server_id: string | null;
  device: string | null;
  delete_on_termination: boolean;
  availability_zone: string | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = [
  'id', 'project_id', 'name', 'size_gb', 'status', 'image_id', 'host', 'server_id', 'device', 'delete_on_termination', 'availability_zone', 'created_at', 'updated_at',
];

function toVolume(row: VolumeRow): Volume {
  return {
    id: row.id,
    projectId: row.project_id,
    name: row.name,
    sizeGb: row.size_gb,
    status: row.status,
    imageId: row.image_id,
    host: row.host,
    serverId: row.server_id,
    device: row.device,
    deleteOnTermination: row.delete_on_termination,
    availabilityZone: row.availability_zone,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const notFound = (id: string) => new NotFound(`volume '${id}' not found`);
const badSize = () => new InvalidInput('size_gb must be an integer > 0', [{ field: 'size_gb', message: 'must be an integer > 0' }]);

export interface NewVolume {
  id?: string;
  projectId: string;
  name: string;
  sizeGb: number;
  imageId?: string | null;
  host?: string | null;
  serverId?: string | null;
  device?: string | null;
  deleteOnTermination?: boolean;
  /** Default 'creating'. */
  status?: VolumeStatus;
  availabilityZone?: string | null;
}

/** Throws InvalidInput (size_gb), NotFound (project_id, image_id), Conflict (id taken). */
export async function create(db: Queryable, input: NewVolume): Promise<Volume> {
  if (!Number.isSafeInteger(input.sizeGb) || input.sizeGb <= 0) throw badSize();
  if (!isUuid(input.projectId)) throw missing('project_id', `project '${input.projectId}' not found`)();
  if (input.imageId != null && !isUuid(input.imageId)) throw missing('image_id', `image '${input.imageId}' not found`)();
  if (input.serverId != null && !isUuid(input.serverId)) throw new InvalidInput(`'${input.serverId}' is not a server id`, [{ field: 'server_id', message: 'not a uuid' }]);
  const id = input.id ?? newId();
  const rows = await atDbEdge<VolumeRow[]>(
    () =>
      db('volumes')
        .insert({
          id,
          project_id: input.projectId,
          name: input.name,
          size_gb: input.sizeGb,
          status: input.status ?? 'creating',
          image_id: input.imageId ?? null,
          host: input.host ?? null,
          server_id: input.serverId ?? null,
          device: input.device ?? null,
          delete_on_termination: input.deleteOnTermination ?? false,
          availability_zone: input.availabilityZone ?? null,
        })
        .returning(COLUMNS),
    {
      volumes_pkey: conflict('id', `volume '${id}' already exists`),
      volumes_project_id_fkey: missing('project_id', `project '${input.projectId}' not found`),
      volumes_image_id_fkey: missing('image_id', `image '${input.imageId ?? ''}' not found`),
      volumes_size_gb_check: badSize,
      volumes_status_check: () => new InvalidInput(`'${input.status ?? ''}' is not a volume status`, [{ field: 'status', message: 'unknown' }]),
    },
  );
  return toVolume(insertedRow(rows));
}

export async function get(db: Queryable, id: string): Promise<Volume | null> {
  if (!isUuid(id)) return null;
  const row = (await db('volumes').select(COLUMNS).where({ id }).first()) as VolumeRow | undefined;
  return row ? toVolume(row) : null;
}

export interface VolumeFilters {
  projectId?: string;
  serverId?: string;
  /** Exact name. */
  name?: string;
  status?: VolumeStatus;
}

/** Ordered by creation; filtered by `VolumeFilters` (exact); 'deleted' volumes only with `includeDeleted`. */
export function list(db: Queryable, page: PageRequest & VolumeFilters & { includeDeleted?: boolean }): Promise<Page<Volume>> {
  if ((page.projectId !== undefined && !isUuid(page.projectId)) || (page.serverId !== undefined && !isUuid(page.serverId))) {
    return Promise.resolve({ items: [], next: null });
  }
  const q = db('volumes').select(COLUMNS);
  if (page.projectId !== undefined) q.where('project_id', page.projectId);
  if (page.serverId !== undefined) q.where('server_id', page.serverId);
  if (page.name !== undefined) q.where('name', page.name);
  if (page.status !== undefined) q.where('status', page.status);
  if (!page.includeDeleted) q.whereNot('status', 'deleted');
  return paginate(db, q, byCreation('volumes'), page, toVolume);
}

/** The volumes attached (or attaching, or detaching) to each of `serverIds`, in one query, oldest first. */
export async function listByServers(db: Queryable, serverIds: readonly string[]): Promise<Map<string, Volume[]>> {
  const wanted = distinctUuids(serverIds);
  if (wanted.length === 0) return new Map();
  const rows = (await db('volumes')
    .select(COLUMNS)
    .whereIn('server_id', wanted)
    .whereNotIn('status', ['deleted', 'deleting'])
    .orderBy([{ column: 'created_at' }, { column: 'id' }])) as VolumeRow[];
  return groupBy(rows.map(toVolume), (v) => v.serverId as string);
}

export interface VolumeTransition {
  /** The statuses the volume may be in for the transition to happen. */
  from: readonly VolumeStatus[];
  to: VolumeStatus;
  /** Columns changed together with the status (undefined keeps the current value). */
  set?: {
    host?: string | null;
    serverId?: string | null;
    device?: string | null;
    deleteOnTermination?: boolean;
  };
}

/**
 * Moves the volume to `to` if (and only if) its status is one of `from`, in one atomic UPDATE,
 * returning the updated volume. Throws NotFound when absent, Conflict "volume X is S, not A or B"
 * when it is in another status (including when a racing transition won).
 */
export async function transition(db: Queryable, id: string, t: VolumeTransition): Promise<Volume> {
  if (!isUuid(id)) throw notFound(id);
  if (t.from.length === 0) throw new Error('transition needs at least one `from` status');
  const set: Record<string, unknown> = { status: t.to, updated_at: db.fn.now() };
  if (t.set?.host !== undefined) set.host = t.set.host;
  if (t.set?.serverId !== undefined) {
    if (t.set.serverId !== null && !isUuid(t.set.serverId)) {
      throw new InvalidInput(`'${t.set.serverId}' is not a server id`, [{ field: 'server_id', message: 'not a uuid' }]);
    }
    set.server_id = t.set.serverId;
  }
  if (t.set?.device !== undefined) set.device = t.set.device;
  if (t.set?.deleteOnTermination !== undefined) set.delete_on_termination = t.set.deleteOnTermination;
  const [row] = await atDbEdge<VolumeRow[]>(() => db('volumes').where({ id }).whereIn('status', [...t.from]).update(set).returning(COLUMNS));
  if (row) return toVolume(row);
  const current = await get(db, id);
  if (!current) throw notFound(id);
  throw new Conflict(`volume '${id}' is ${current.status}, not ${t.from.join(' or ')}`, [{ field: 'status', message: current.status }]);
}

/** Statuses in which a volume is tied to a server and may not be removed. */
const ATTACHED: readonly VolumeStatus[] = ['reserved', 'attaching', 'in-use', 'detaching'];

/**
 * Deletes the row. Throws NotFound, or Conflict while the volume is reserved, attaching, in-use or
 * detaching (detach it first); the check and the delete are one statement.
 */
export async function remove(db: Queryable, id: string): Promise<void> {
  if (!isUuid(id)) throw notFound(id);
  const count = await db('volumes').where({ id }).whereNotIn('status', [...ATTACHED]).delete();
  if (count > 0) return;
  const current = await get(db, id);
  if (!current) throw notFound(id);
  throw new Conflict(`volume '${id}' is ${current.status}: detach it first`, [{ field: 'status', message: current.status }]);
}

export { remove as delete };
