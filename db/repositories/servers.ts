/**
 * Servers (Nova instances). Status follows Nova: BUILD → ACTIVE ⇄ SHUTOFF, ERROR, DELETED, with a
 * task_state naming the step in progress. Deleting marks the row DELETED (it stays readable by id).
 */
import { Conflict, InvalidInput, NotFound } from '../../core/errors';
import { atDbEdge, conflict, insertedRow, missing } from '../errors';
import { distinctUuids } from '../batch';
import { isUuid } from '../ids';
import { byCreation, pageOf, pageSelect, paginate } from '../pagination';
import type { Knex } from 'knex';
import type { Database } from '../connect';
import type { Page, PageRequest, Queryable } from '../types';
import type * as flavors from './flavors';
import * as operations from './operations';
import * as ports from './ports';
import * as volumes from './volumes';

export const SERVER_STATUSES = ['BUILD', 'ACTIVE', 'SHUTOFF', 'ERROR', 'DELETED'] as const;
export type ServerStatus = (typeof SERVER_STATUSES)[number];

/** Why a server went to ERROR: the workflow step, a machine-readable code, a message for people. */
export interface ServerFault {
  step: string;
  code: string;
  message: string;
}

export interface Server {
  id: string;
  projectId: string;
  /** Who created it; null once that user is deleted. */
  userId: string | null;
  name: string;
  /** The flavor it was created with; may name a deleted flavor when the server is DELETED. */
  flavorId: string;
  /** null for a server booted without an image, or once the image is deleted. */
  imageId: string | null;
  status: ServerStatus;
  /** The step in progress ('scheduling', 'networking', 'block_device_mapping', 'spawning', 'deleting', …) or null. */
  taskState: string | null;
  powerState: string | null;
  /** The host it runs on, once scheduled. */
  host: string | null;
  metadata: Record<string, string>;
  fault: ServerFault | null;
  /** The zone the request asked for, or null (any zone). */
  availabilityZone: string | null;
  /** The scheduler's decision: host, alternates, weights (shown to admins). */
  placement: Record<string, unknown> | null;
  /** The batch that made it, and its index there (null for a server created alone). */
  batchId: string | null;
  batchIndex: number | null;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

interface ServerRow {
  id: string;
  project_id: string;
  user_id: string | null;
  name: string;
  flavor_id: string;
  image_id: string | null;
  status: ServerStatus;
  task_state: string | null;
  power_state: string | null;
  host: string | null;
  metadata: Record<string, string>;
  fault: ServerFault | null;
  availability_zone: string | null;
  placement: Record<string, unknown> | null;
  batch_id: string | null;
  batch_index: number | null;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

const COLUMNS = [
  'id', 'project_id', 'user_id', 'name', 'flavor_id', 'image_id', 'status', 'task_state', 'power_state', 'host',
  'metadata', 'fault', 'availability_zone', 'placement', 'batch_id', 'batch_index', 'created_at', 'updated_at', 'deleted_at',
];

function toServer(row: ServerRow): Server {
  return {
    id: row.id,
    projectId: row.project_id,
    userId: row.user_id,
    name: row.name,
    flavorId: row.flavor_id,
    imageId: row.image_id,
    status: row.status,
    taskState: row.task_state,
    powerState: row.power_state,
    host: row.host,
    metadata: row.metadata,
    fault: row.fault,
    availabilityZone: row.availability_zone,
    placement: row.placement,
    batchId: row.batch_id,
    batchIndex: row.batch_index,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deletedAt: row.deleted_at,
  };
}

const notFound = (id: string) => new NotFound(`server '${id}' not found`);

export interface NewServer {
  /** Chosen by the caller (the workflow id derives from it). */
  id: string;
  projectId: string;
  userId: string | null;
  name: string;
  flavorId: string;
  imageId: string | null;
  metadata?: Record<string, string>;
  availabilityZone?: string | null;
  /** A member of a batch: its batch and index. */
  batch?: { id: string; index: number };
}

/**
 * Inserts the server as BUILD / task_state 'scheduling'. Throws Conflict when the id exists, NotFound
 * (project_id, user_id, flavor_id, image_id) when a referenced row does not. The flavor row is
 * locked (FOR KEY SHARE, as a foreign key check would) until the insert commits, so flavors.remove
 * either sees this server or this create sees the flavor gone.
 */
export async function create(db: Queryable, input: NewServer): Promise<Server> {
  const refs = { project_id: input.projectId, user_id: input.userId, flavor_id: input.flavorId, image_id: input.imageId };
  for (const [field, value] of Object.entries(refs)) {
    if (value !== null && !isUuid(value)) throw missing(field, `${field.replace(/_id$/, '')} '${value}' not found`)();
  }
  if (!isUuid(input.id)) throw new InvalidInput(`server id '${input.id}' is not a uuid`, [{ field: 'id', message: 'not a uuid' }]);
  const flavorMissing = missing('flavor_id', `flavor '${input.flavorId}' not found`);
  return db.transaction(async (trx) => {
    const flavor = await trx('flavors').select('id').where({ id: input.flavorId }).forKeyShare().first();
    if (!flavor) throw flavorMissing();
    const rows = await atDbEdge<ServerRow[]>(
      () =>
        trx('servers')
          .insert({
            id: input.id,
            ...refs,
            name: input.name,
            status: 'BUILD',
            task_state: 'scheduling',
            metadata: JSON.stringify(input.metadata ?? {}),
            availability_zone: input.availabilityZone ?? null,
            ...(input.batch ? { batch_id: input.batch.id, batch_index: input.batch.index } : {}),
          })
          .returning(COLUMNS),
      {
        servers_pkey: conflict('id', `server '${input.id}' already exists`),
        servers_batch_member_key: conflict('batch_index', `batch member ${input.batch?.index ?? ''} already exists`),
        servers_project_id_fkey: missing('project_id', `project '${input.projectId}' not found`),
        servers_user_id_fkey: missing('user_id', `user '${input.userId ?? ''}' not found`),
        servers_image_id_fkey: missing('image_id', `image '${input.imageId ?? ''}' not found`),
      },
    );
    return toServer(insertedRow(rows));
  });
}

/** The server, DELETED ones included; null when there never was one. */
export async function get(db: Queryable, id: string): Promise<Server | null> {
  if (!isUuid(id)) return null;
  const row = (await db('servers').select(COLUMNS).where({ id }).first()) as ServerRow | undefined;
  return row ? toServer(row) : null;
}

/** Ordered by creation; `projectId` and `batchId` filter; DELETED servers only with `includeDeleted`. */
export interface ServerListFilter {
  projectId?: string;
  batchId?: string;
  includeDeleted?: boolean;
  /** Names containing this, case-insensitively (Nova's `name` filter, a regex there). */
  nameContains?: string;
  status?: ServerStatus;
}

/** The filtered select of `list`, not yet ordered or paged; null when the filter cannot match. */
function listQuery(db: Queryable, filter: ServerListFilter) {
  if (filter.projectId !== undefined && !isUuid(filter.projectId)) return null;
  if (filter.batchId !== undefined && !isUuid(filter.batchId)) return null;
  const q = db('servers').select(COLUMNS);
  if (filter.projectId !== undefined) q.where('project_id', filter.projectId);
  if (filter.batchId !== undefined) q.where('batch_id', filter.batchId);
  if (filter.nameContains !== undefined) q.whereRaw("name ilike ? escape '\\'", [`%${filter.nameContains.replace(/[\\%_]/g, (c) => `\\${c}`)}%`]);
  if (filter.status !== undefined) q.where('status', filter.status);
  if (!filter.includeDeleted) q.whereNot('status', 'DELETED');
  return q;
}

export function list(db: Queryable, page: PageRequest & ServerListFilter): Promise<Page<Server>> {
  const q = listQuery(db, page);
  return q ? paginate(db, q, byCreation('servers'), page, toServer) : Promise.resolve({ items: [], next: null });
}

/**
 * A server with what its presentations (/v1, Nova) show of its relations: the fields shown, not
 * whole rows (reading less is most of what makes a page cheap).
 */
export interface ServerWithRelations {
  server: Server;
  flavor: Pick<flavors.Flavor, 'id' | 'name' | 'vcpus' | 'ramMb' | 'diskGb'> | null;
  ports: Array<Pick<ports.Port, 'id' | 'networkId' | 'subnetId' | 'fixedIp' | 'mac' | 'status'>>;
  /** Attached (or attaching, detaching) volumes. */
  volumes: Array<Pick<volumes.Volume, 'id' | 'device'>>;
  /** The latest operation on the server, if any. */
  latest: Pick<operations.Operation, 'id' | 'status' | 'workflowId' | 'runId' | 'progress'> | null;
  /** The server group it belongs to, if any. */
  groupId: string | null;
}

/**
 * Servers with their relations as ONE JSON value: an array with, for each server of `source` (a
 * select of COLUMNS from servers, then `keyCount` cursor keys as text), an array of its columns, its
 * flavor, ports, volumes, latest operation and group id, then its cursor keys. The relations are each
 * one index lookup per server (ports_device_order_idx, volumes_server_id_idx,
 * operations_resource_order_idx) or a join on a small table read once (flavors,
 * server_group_members), so a page is one query whatever its length and no table is scanned for an
 * `IN (…)` list; and only the fields shown are read. One value instead of ~25 columns per row is what
 * makes decoding cheap: PGlite copies every field of every row out of its memory.
 */
function selectWithRelations(db: Queryable, source: Knex.QueryBuilder, keyCount: number, order = '') {
  const keys = Array.from({ length: keyCount }, (_, i) => `, s.__k${i}`).join('');
  return db
    .select(
      db.raw(`json_agg(json_build_array(${COLUMNS.map((c) => `s.${c}`).join(', ')},
        case when f.id is null then null else json_build_array(f.id, f.name, f.vcpus, f.ram_mb, f.disk_gb) end,
        (select json_agg(json_build_array(id, network_id, subnet_id, fixed_ip, mac, status) order by created_at, id) from ports where device_id = s.id),
        (select json_agg(json_build_array(id, device) order by created_at, id) from volumes where server_id = s.id and status not in ('deleted', 'deleting')),
        (select json_build_array(id, status, workflow_id, run_id, progress) from operations where resource_id = s.id order by created_at desc, id desc limit 1),
        g.group_id${keys}) ${order}) as servers`),
    )
    .from(source.as('s'))
    .leftJoin('flavors as f', 'f.id', 's.flavor_id')
    .leftJoin('server_group_members as g', 'g.server_id', 's.id');
}

/** The relations in one server's array of selectWithRelations, after its COLUMNS (timestamps there are ISO text). */
type FlavorJson = [id: string, name: string, vcpus: number, ramMb: number, diskGb: number];
type PortJson = [id: string, networkId: string, subnetId: string, fixedIp: string, mac: string, status: ports.PortStatus];
type VolumeJson = [id: string, device: string | null];
type OperationJson = [id: string, status: operations.OperationStatus, workflowId: string, runId: string | null, progress: unknown];

const TIMESTAMPS = new Set(['created_at', 'updated_at', 'deleted_at']);

async function readWithRelations(query: Knex.QueryBuilder): Promise<Array<{ details: ServerWithRelations; keys: string[] }>> {
  return decodeWithRelations((await query) as WithRelationsRow[]);
}

/** What selectWithRelations returns: one row, whose one column is every server's array. */
type WithRelationsRow = { servers: unknown[][] | null };

function decodeWithRelations([row]: readonly WithRelationsRow[]): Array<{ details: ServerWithRelations; keys: string[] }> {
  return (row?.servers ?? []).map((a) => {
    const columns: Record<string, unknown> = {};
    COLUMNS.forEach((c, i) => {
      columns[c] = TIMESTAMPS.has(c) && a[i] !== null ? new Date(a[i] as string) : a[i];
    });
    const server = toServer(columns as unknown as ServerRow);
    const n = COLUMNS.length;
    const f = a[n] as FlavorJson | null;
    const op = a[n + 3] as OperationJson | null;
    const details: ServerWithRelations = {
      server,
      flavor: f ? { id: f[0], name: f[1], vcpus: f[2], ramMb: f[3], diskGb: f[4] } : null,
      ports: ((a[n + 1] as PortJson[] | null) ?? []).map(([id, networkId, subnetId, fixedIp, mac, status]) => ({ id, networkId, subnetId, fixedIp, mac, status })),
      volumes: ((a[n + 2] as VolumeJson[] | null) ?? []).map(([id, device]) => ({ id, device })),
      latest: op ? { id: op[0], status: op[1], workflowId: op[2], runId: op[3], progress: op[4] ?? null } : null,
      groupId: a[n + 4] as string | null,
    };
    return { details, keys: a.slice(n + 5) as string[] };
  });
}

/** `list` with each server's relations, in one query. */
export async function listWithRelations(db: Queryable, page: PageRequest & ServerListFilter): Promise<Page<ServerWithRelations>> {
  const q = listQuery(db, page);
  if (!q) return { items: [], next: null };
  const keys = byCreation('servers');
  const { select, limit } = await pageSelect(db, q, keys, page);
  const rows = await readWithRelations(selectWithRelations(db, select, keys.length, 'order by s.created_at, s.id'));
  return pageOf(rows, limit, (r) => r.keys, (r) => r.details);
}

/** `get` with the server's relations, in one query. */
export async function getWithRelations(db: Queryable, id: string): Promise<ServerWithRelations | null> {
  if (!isUuid(id)) return null;
  const query = (on: Queryable, value: string) => selectWithRelations(on, on('servers').select(COLUMNS).where({ id: value }), 0);
  // A server's show is the read clients poll most: outside a transaction it runs as a statement
  // prepared once per connection (Database.prepared), its text built by knex once.
  const rows = 'prepared' in db && !db.isTransaction ? await (db as Database).prepared<WithRelationsRow>((showSql ??= nativeSql(query(db, SQL_SENTINEL))), [id]) : await query(db, id);
  const [found] = decodeWithRelations(rows as WithRelationsRow[]);
  return found?.details ?? null;
}

/** getWithRelations's text, with the id as $1. */
let showSql: string | undefined;
const SQL_SENTINEL = '00000000-0000-4000-8000-00000000c0de';

/** A query's text for PostgreSQL, whose one binding must be SQL_SENTINEL (then $1). */
function nativeSql(query: Knex.QueryBuilder): string {
  const native = query.toSQL().toNative();
  if (native.bindings.length !== 1 || native.bindings[0] !== SQL_SENTINEL) throw new Error(`expected one binding, the sentinel, in: ${native.sql}`);
  return native.sql;
}

/** The relations of servers already read (in one query), in their order. */
export async function withRelations(db: Queryable, list: readonly Server[]): Promise<ServerWithRelations[]> {
  const ids = distinctUuids(list.map((s) => s.id));
  const rows = ids.length > 0 ? await readWithRelations(selectWithRelations(db, db('servers').select(COLUMNS).whereIn('id', ids), 0)) : [];
  const byId = new Map(rows.map(({ details }) => [details.server.id, details]));
  const none = { flavor: null, ports: [], volumes: [], latest: null, groupId: null };
  return list.map((server) => ({ ...(byId.get(server.id) ?? none), server }));
}

export interface ServerPatch {
  status?: ServerStatus;
  taskState?: string | null;
  powerState?: string | null;
  host?: string | null;
  fault?: ServerFault | null;
  metadata?: Record<string, string>;
  /** The placement decision (as setPlacement writes it). */
  placement?: Record<string, unknown>;
}

/**
 * Applies the patch (fields left undefined are kept) and bumps updated_at, in one conditional update.
 * Only while the status is one of `from` (default: any but DELETED, so a late step of a create
 * workflow cannot revive a deleted server). Throws NotFound, or Conflict "server X is S, not …".
 * Marking DELETED goes through markDeleted.
 */
export async function update(
  db: Queryable,
  id: string,
  patch: ServerPatch,
  options: { from?: readonly ServerStatus[]; /** Only when no task is in progress (task_state is null). */ idle?: boolean } = {},
): Promise<Server> {
  if (!isUuid(id)) throw notFound(id);
  const from = options.from ?? SERVER_STATUSES.filter((s) => s !== 'DELETED');
  const set: Record<string, unknown> = { updated_at: db.fn.now() };
  if (patch.status !== undefined) set.status = patch.status;
  if (patch.taskState !== undefined) set.task_state = patch.taskState;
  if (patch.powerState !== undefined) set.power_state = patch.powerState;
  if (patch.host !== undefined) set.host = patch.host;
  if (patch.fault !== undefined) set.fault = patch.fault === null ? null : JSON.stringify(patch.fault);
  if (patch.metadata !== undefined) set.metadata = JSON.stringify(patch.metadata);
  if (patch.placement !== undefined) set.placement = JSON.stringify(patch.placement);
  if (patch.status === 'DELETED') set.deleted_at = db.fn.now();
  const [row] = await atDbEdge<ServerRow[]>(() => {
    const q = db('servers').where({ id }).whereIn('status', [...from]);
    if (options.idle) q.whereNull('task_state');
    return q.update(set).returning(COLUMNS);
  });
  if (row) return toServer(row);
  const current = await get(db, id);
  if (!current) throw notFound(id);
  if (options.idle && current.taskState !== null && from.includes(current.status)) {
    throw new Conflict(`server '${id}' is busy: ${current.taskState}`, [{ field: 'task_state', message: current.taskState }]);
  }
  throw new Conflict(`server '${id}' is ${current.status}, not ${from.join(' or ')}`, [{ field: 'status', message: current.status }]);
}

/**
 * Marks the server DELETED (task_state cleared, deleted_at set once). Idempotent: a deleted server
 * is returned as it is. Throws NotFound.
 */
export async function markDeleted(db: Queryable, id: string): Promise<Server> {
  if (!isUuid(id)) throw notFound(id);
  const [row] = (await db('servers')
    .where({ id })
    .whereNot('status', 'DELETED')
    .update({ status: 'DELETED', task_state: null, deleted_at: db.fn.now(), updated_at: db.fn.now() })
    .returning(COLUMNS)) as ServerRow[];
  if (row) return toServer(row);
  const current = await get(db, id);
  if (!current) throw notFound(id);
  return current;
}

/**
 * Deletes the row outright: only for undoing a create whose workflow never started (a server that
 * ran is marked DELETED instead). Throws NotFound.
 */
export async function remove(db: Queryable, id: string): Promise<void> {
  const count = isUuid(id) ? await db('servers').where({ id }).delete() : 0;
  if (count === 0) throw notFound(id);
}

export { remove as delete };

/** Records the scheduler's decision on the server (for admins: why it went where it went). */
export async function setPlacement(db: Queryable, id: string, placement: Record<string, unknown>): Promise<void> {
  if (!isUuid(id)) return;
  await db('servers').where({ id }).update({ placement: JSON.stringify(placement) });
}
