/** Images (Glance's catalog): what is known about each image. The bytes live in an image store. */
import { Conflict, NotFound } from '../../core/errors';
import { atDbEdge, conflict, insertedRow, missing } from '../errors';
import { isUuid, newId } from '../ids';
import { byCreation, paginate } from '../pagination';
import type { Page, PageRequest, Queryable } from '../types';

export type ImageStatus = 'queued' | 'saving' | 'active' | 'killed' | 'deleted';
export type DiskFormat = 'raw' | 'qcow2';
export type ImageVisibility = 'private' | 'public';

export interface Image {
  id: string;
  projectId: string;
  name: string;
  status: ImageStatus;
  diskFormat: DiskFormat;
  minDiskGb: number;
  minRamMb: number;
  visibility: ImageVisibility;
  protected: boolean;
  properties: Record<string, string>;
  /** Known once the bytes are stored (status active). */
  sizeBytes: number | null;
  /** sha256 of the bytes, lowercase hex; known once active. */
  checksumSha256: string | null;
  /** md5 of the bytes, lowercase hex (Glance's `checksum`); null before upload and for images stored before it was kept. */
  checksumMd5: string | null;
  tags: string[];
  /** Hidden from default listings (Glance's `os_hidden`). */
  osHidden: boolean;
  createdAt: Date;
  updatedAt: Date;
}

interface ImageRow {
  id: string;
  project_id: string;
  name: string;
  status: ImageStatus;
  disk_format: DiskFormat;
  min_disk_gb: number;
  min_ram_mb: number;
  visibility: ImageVisibility;
  protected: boolean;
  properties: Record<string, string>;
  size_bytes: number | string | null;
  checksum_sha256: string | null;
  checksum_md5: string | null;
  tags: string[];
  os_hidden: boolean;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = [
  'id',
  'project_id',
  'name',
  'status',
  'disk_format',
  'min_disk_gb',
  'min_ram_mb',
  'visibility',
  'protected',
  'properties',
  'size_bytes',
  'checksum_sha256',
  'checksum_md5',
  'tags',
  'os_hidden',
  'created_at',
  'updated_at',
].map((c) => `images.${c}`);

function toImage(row: ImageRow): Image {
  return {
    id: row.id,
    projectId: row.project_id,
    name: row.name,
    status: row.status,
    diskFormat: row.disk_format,
    minDiskGb: row.min_disk_gb,
    minRamMb: row.min_ram_mb,
    visibility: row.visibility,
    protected: row.protected,
    properties: row.properties,
    sizeBytes: row.size_bytes === null ? null : Number(row.size_bytes),
    checksumSha256: row.checksum_sha256,
    checksumMd5: row.checksum_md5,
    tags: row.tags,
    osHidden: row.os_hidden,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const notFound = (id: string) => new NotFound(`image '${id}' not found`);
const projectMissing = (projectId: string) => ({
  images_project_id_fkey: missing('project_id', `project '${projectId}' not found`),
});

/** True when `projectId` may see the image: its own, or public. */
export function isVisibleTo(image: Pick<Image, 'projectId' | 'visibility'>, projectId: string): boolean {
  return image.projectId === projectId || image.visibility === 'public';
}

export interface NewImage {
  /** Defaults to a new uuid; pass one to make a retried create land on the same id. */
  id?: string;
  projectId: string;
  name: string;
  diskFormat: DiskFormat;
  minDiskGb?: number;
  minRamMb?: number;
  visibility?: ImageVisibility;
  protected?: boolean;
  properties?: Record<string, string>;
  tags?: string[];
  osHidden?: boolean;
}

/** A new image, status queued (no bytes yet). Throws NotFound when the project does not exist. */
export async function create(db: Queryable, input: NewImage): Promise<Image> {
  const rows = await atDbEdge<ImageRow[]>(
    () =>
      db('images')
        .insert({
          id: input.id ?? newId(),
          project_id: input.projectId,
          name: input.name,
          status: 'queued',
          disk_format: input.diskFormat,
          min_disk_gb: input.minDiskGb ?? 0,
          min_ram_mb: input.minRamMb ?? 0,
          visibility: input.visibility ?? 'private',
          protected: input.protected ?? false,
          // Serialized here: both drivers accept JSON text for jsonb.
          properties: JSON.stringify(input.properties ?? {}),
          tags: JSON.stringify(input.tags ?? []),
          os_hidden: input.osHidden ?? false,
        })
        .returning(COLUMNS),
    { ...projectMissing(input.projectId), images_pkey: conflict('id', `image '${input.id ?? ''}' already exists`) },
  );
  return toImage(insertedRow(rows));
}

/** The image whatever its visibility (callers check `isVisibleTo`), or null. */
export async function get(db: Queryable, id: string): Promise<Image | null> {
  if (!isUuid(id)) return null;
  const row = (await db('images').select(COLUMNS).where({ id }).first()) as ImageRow | undefined;
  return row ? toImage(row) : null;
}

/** The image if `projectId` may see it (its own, or public), else null: another project's private image does not exist for it. */
export async function getVisible(db: Queryable, id: string, projectId: string): Promise<Image | null> {
  const image = await get(db, id);
  return image && isVisibleTo(image, projectId) ? image : null;
}

/** Exact-match filters of an image listing (each one narrows it). */
export interface ImageFilters {
  name?: string;
  status?: string;
  visibility?: string;
  /** The owning project. */
  ownerId?: string;
  /** Any of these ids. */
  ids?: readonly string[];
  /** Hidden images only (true) or visible ones only (false). */
  osHidden?: boolean;
}

/** The project's own images and every public image (every image when `projectId` is omitted: admins), oldest first. */
export function listVisible(db: Queryable, page: PageRequest & ImageFilters & { projectId?: string }): Promise<Page<Image>> {
  const q = db('images').select(COLUMNS);
  if (page.projectId !== undefined) {
    const projectId = page.projectId;
    q.where((w) => {
      w.where('images.project_id', projectId).orWhere('images.visibility', 'public');
    });
  }
  const uuids = (ids: readonly string[]) => ids.filter(isUuid);
  if (page.ownerId !== undefined) {
    if (!isUuid(page.ownerId)) return Promise.resolve({ items: [], next: null });
    q.where('images.project_id', page.ownerId);
  }
  if (page.ids !== undefined) q.whereIn('images.id', uuids(page.ids));
  if (page.name !== undefined) q.where('images.name', page.name);
  if (page.status !== undefined) q.where('images.status', page.status);
  if (page.visibility !== undefined) q.where('images.visibility', page.visibility);
  if (page.osHidden !== undefined) q.where('images.os_hidden', page.osHidden);
  return paginate(db, q, byCreation('images'), page, toImage);
}

export interface ImageChanges {
  name?: string;
  visibility?: ImageVisibility;
  protected?: boolean;
  minDiskGb?: number;
  minRamMb?: number;
  osHidden?: boolean;
  /** Replaces the whole map. */
  properties?: Record<string, string>;
  /** Replaces the whole list. */
  tags?: string[];
}

/** Changes the catalog fields (never status, size or checksum: see `transition`). Throws NotFound. */
export async function update(db: Queryable, id: string, changes: ImageChanges): Promise<Image> {
  if (!isUuid(id)) throw notFound(id);
  const set: Record<string, unknown> = { updated_at: db.fn.now() };
  if (changes.name !== undefined) set.name = changes.name;
  if (changes.visibility !== undefined) set.visibility = changes.visibility;
  if (changes.protected !== undefined) set.protected = changes.protected;
  if (changes.minDiskGb !== undefined) set.min_disk_gb = changes.minDiskGb;
  if (changes.minRamMb !== undefined) set.min_ram_mb = changes.minRamMb;
  if (changes.osHidden !== undefined) set.os_hidden = changes.osHidden;
  if (changes.properties !== undefined) set.properties = JSON.stringify(changes.properties);
  if (changes.tags !== undefined) set.tags = JSON.stringify(changes.tags);
  const [row] = await atDbEdge<ImageRow[]>(() => db('images').where({ id }).update(set).returning(COLUMNS));
  if (!row) throw notFound(id);
  return toImage(row);
}

export interface TransitionSet {
  sizeBytes?: number | null;
  checksumSha256?: string | null;
  checksumMd5?: string | null;
}

/**
 * Moves the image to status `to` if, and only if, its status is one of `from`, in one statement
 * (`update … where status in (…)`), so two racing uploads cannot both move queued → saving.
 * Throws NotFound when the image does not exist, Conflict when it is in another status.
 */
export async function transition(
  db: Queryable,
  id: string,
  from: readonly ImageStatus[],
  to: ImageStatus,
  set: TransitionSet = {},
): Promise<Image> {
  if (!isUuid(id)) throw notFound(id);
  const values: Record<string, unknown> = { status: to, updated_at: db.fn.now() };
  if (set.sizeBytes !== undefined) values.size_bytes = set.sizeBytes;
  if (set.checksumSha256 !== undefined) values.checksum_sha256 = set.checksumSha256;
  if (set.checksumMd5 !== undefined) values.checksum_md5 = set.checksumMd5;
  const [row] = await atDbEdge<ImageRow[]>(() =>
    db('images').where({ id }).whereIn('status', [...from]).update(values).returning(COLUMNS),
  );
  if (row) return toImage(row);
  const current = await get(db, id);
  if (!current) throw notFound(id);
  throw new Conflict(`image '${id}' is ${current.status}; this needs it ${from.join(' or ')}`, [
    { field: 'status', message: `is ${current.status}` },
  ]);
}

/** Deletes the row (not the bytes: the caller owns the store). Throws NotFound, or Conflict when protected. */
export async function remove(db: Queryable, id: string): Promise<Image> {
  if (!isUuid(id)) throw notFound(id);
  const [row] = (await db('images').where({ id, protected: false }).delete().returning(COLUMNS)) as ImageRow[];
  if (row) return toImage(row);
  if (await get(db, id)) {
    throw new Conflict(`image '${id}' is protected: unprotect it first (PATCH protected=false)`, [
      { field: 'protected', message: 'is true' },
    ]);
  }
  throw notFound(id);
}

export { remove as delete };
