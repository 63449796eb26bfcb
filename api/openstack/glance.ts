/**
 * Glance v2 (image) over the image service (services/images.ts) and the shared image data path
 * (api/image-data.ts): create, upload (`PUT …/file`, streamed, synchronous: queued → active before
 * the 204), download, list with Glance's filters and its version-relative `next`, show, JSON-patch
 * update and delete. Image bodies are flat (no wrapper key); custom properties are top-level string
 * keys (e.g. the CLI's `owner_specified.openstack.*`), stored in the image's `properties`.
 *
 * Stratus keeps what it can honour: disk formats raw and qcow2, container format bare, visibility
 * private or public. Anything else is a 400 that says so, never silently dropped.
 */
import express, { Router, type Request } from 'express';
import { Conflict } from '../../core/errors';
import { createImageService, type Image, type ImageChanges, type ImageFilters } from '../../services/images';
import { callerOf } from '../auth';
import { rejectNulCharacters } from '../body';
import { deleteImage, receiveImageData, sendImageData } from '../image-data';
import { OpenStackError } from './errors';
import type { OpenStackDeps } from './index';
import { nextQuery, osPage } from './paging';
import { isoSecondsZ } from './time';

const DISK_FORMATS = ['raw', 'qcow2'] as const;
const VISIBILITIES = ['private', 'public'] as const;
const CONTAINER_FORMAT = 'bare';
/** Fields the server sets; a client may not (Glance: 403 "Attribute '…' is read-only"). */
const READ_ONLY = new Set([
  'status',
  'size',
  'virtual_size',
  'checksum',
  'os_hash_algo',
  'os_hash_value',
  'owner',
  'created_at',
  'updated_at',
  'file',
  'self',
  'schema',
  'direct_url',
  'locations',
]);
/** Fields set at creation only. */
const CREATE_ONLY = new Set(['id', 'disk_format', 'container_format']);
/** Core fields a PATCH may change. */
const MUTABLE = new Set(['name', 'visibility', 'min_disk', 'min_ram', 'protected', 'os_hidden', 'tags']);
const RESERVED = new Set([...READ_ONLY, ...CREATE_ONLY, ...MUTABLE]);

export function presentImage(i: Image) {
  return {
    ...i.properties,
    id: i.id,
    name: i.name,
    status: i.status,
    visibility: i.visibility,
    disk_format: i.diskFormat,
    container_format: CONTAINER_FORMAT,
    size: i.sizeBytes,
    // A raw image's virtual size is its size; a qcow2's is in its header, which Stratus does not read.
    virtual_size: i.diskFormat === 'raw' ? i.sizeBytes : null,
    checksum: i.checksumMd5,
    os_hash_algo: i.checksumSha256 === null ? null : 'sha256',
    os_hash_value: i.checksumSha256,
    min_disk: i.minDiskGb,
    min_ram: i.minRamMb,
    protected: i.protected,
    os_hidden: i.osHidden,
    owner: i.projectId,
    tags: i.tags,
    file: `/v2/images/${i.id}/file`,
    self: `/v2/images/${i.id}`,
    schema: '/v2/schemas/image',
    created_at: isoSecondsZ(i.createdAt),
    updated_at: isoSecondsZ(i.updatedAt),
  };
}

const bad = (message: string) => new OpenStackError(400, message);

function oneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw bad(`Invalid value ${JSON.stringify(value)} for ${field}: Stratus supports ${allowed.join(', ')}.`);
}

function nonNegativeInt(field: string, value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 2 ** 31 - 1) return value;
  throw bad(`${field} must be a non-negative integer.`);
}

function bool(field: string, value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  throw bad(`${field} must be a boolean.`);
}

function tagList(value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((t) => typeof t === 'string' && t.length > 0 && t.length <= 255)) {
    throw bad('tags must be a list of non-empty strings of at most 255 characters.');
  }
  return [...new Set(value as string[])];
}

function propertyValue(key: string, value: unknown): string {
  if (typeof value === 'string') return value;
  throw bad(`Property ${key} must be a string (Stratus stores custom image properties as strings).`);
}

function flag(value: unknown): boolean | undefined {
  if (typeof value !== 'string') return undefined;
  return /^(true|1|yes)$/i.test(value);
}

/** Glance's list filters: exact `name`, `status`, `visibility`, `owner`, `id=in:a,b`, `os_hidden` (default: hidden images are left out). */
function listFilters(req: Request): ImageFilters | 'none' {
  const q = req.query;
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const filters: ImageFilters = { osHidden: flag(q.os_hidden) ?? false };
  const name = str(q.name);
  if (name !== undefined) filters.name = name;
  const status = str(q.status);
  if (status !== undefined) filters.status = status.toLowerCase();
  const visibility = str(q.visibility);
  if (visibility !== undefined && visibility !== 'all') {
    if (!(VISIBILITIES as readonly string[]).includes(visibility)) return 'none'; // shared, community: Stratus has none
    filters.visibility = visibility;
  }
  const owner = str(q.owner);
  if (owner !== undefined) filters.ownerId = owner;
  const id = str(q.id);
  if (id !== undefined) filters.ids = id.startsWith('in:') ? id.slice(3).split(',') : [id];
  return filters;
}

/** One JSON-patch path (`/name`, `/tags/0`, `/a~1b`) as its unescaped segments. */
function pointer(path: unknown): string[] {
  if (typeof path !== 'string' || !path.startsWith('/') || path === '/') throw bad(`Invalid JSON pointer ${JSON.stringify(path)}.`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/**
 * Applies a Glance JSON patch (`[{op: add|replace|remove, path, value}]`) to the image's editable
 * view, and answers the changes it makes, for the image service to apply (and check).
 */
export function patchChanges(image: Image, ops: unknown): ImageChanges {
  if (!Array.isArray(ops)) throw bad('The body must be a JSON patch: a list of {"op", "path", "value"} operations.');
  const doc = {
    name: image.name,
    visibility: image.visibility as string,
    min_disk: image.minDiskGb,
    min_ram: image.minRamMb,
    protected: image.protected,
    os_hidden: image.osHidden,
    tags: [...image.tags],
  };
  const properties = { ...image.properties };
  for (const raw of ops as Array<{ op?: unknown; path?: unknown; value?: unknown }>) {
    const op = raw?.op;
    if (op !== 'add' && op !== 'replace' && op !== 'remove') throw bad(`Unsupported JSON patch op ${JSON.stringify(op)}: Stratus applies add, replace and remove.`);
    const [key = '', ...rest] = pointer(raw.path);
    if (READ_ONLY.has(key) || CREATE_ONLY.has(key)) throw new OpenStackError(403, `Attribute '${key}' is read-only.`);
    if (key === 'tags' && rest.length === 1) {
      const index = rest[0] === '-' ? doc.tags.length : Number(rest[0]);
      if (!Number.isInteger(index) || index < 0 || index > doc.tags.length - (op === 'add' ? 0 : 1)) throw bad(`Invalid tag index ${rest[0] ?? ''}.`);
      if (op === 'remove') doc.tags.splice(index, 1);
      else doc.tags.splice(index, op === 'add' ? 0 : 1, tagList([raw.value])[0]!);
      continue;
    }
    if (rest.length > 0) throw bad(`Invalid path ${String(raw.path)}.`);
    if (MUTABLE.has(key)) {
      if (op === 'remove') throw new OpenStackError(403, `Attribute '${key}' cannot be removed.`);
      const v = raw.value;
      if (key === 'name') {
        if (typeof v !== 'string' || v.length > 255) throw bad('name must be a string of at most 255 characters.');
        doc.name = v;
      } else if (key === 'visibility') doc.visibility = oneOf('visibility', v, VISIBILITIES);
      else if (key === 'min_disk') doc.min_disk = nonNegativeInt('min_disk', v);
      else if (key === 'min_ram') doc.min_ram = nonNegativeInt('min_ram', v);
      else if (key === 'protected') doc.protected = bool('protected', v);
      else if (key === 'os_hidden') doc.os_hidden = bool('os_hidden', v);
      else doc.tags = tagList(v);
      continue;
    }
    if (op === 'remove' || op === 'replace') {
      if (!(key in properties)) throw new OpenStackError(409, `Property ${key} does not exist.`);
    }
    if (op === 'remove') delete properties[key];
    else properties[key] = propertyValue(key, raw.value);
  }
  const changes: ImageChanges = {};
  if (doc.name !== image.name) changes.name = doc.name;
  if (doc.visibility !== image.visibility) changes.visibility = doc.visibility as ImageChanges['visibility'];
  if (doc.min_disk !== image.minDiskGb) changes.minDiskGb = doc.min_disk;
  if (doc.min_ram !== image.minRamMb) changes.minRamMb = doc.min_ram;
  if (doc.protected !== image.protected) changes.protected = doc.protected;
  if (doc.os_hidden !== image.osHidden) changes.osHidden = doc.os_hidden;
  if (JSON.stringify(doc.tags) !== JSON.stringify(image.tags)) changes.tags = doc.tags;
  if (JSON.stringify(properties) !== JSON.stringify(image.properties)) changes.properties = properties;
  return changes;
}

const PATCH_TYPES = ['application/openstack-images-v2.1-json-patch', 'application/openstack-images-v2.0-json-patch', 'application/json-patch+json'];

export function glanceRouter(deps: OpenStackDeps): Router {
  const router = Router({ mergeParams: true });
  const images = createImageService(deps.db);
  const data = { images, store: deps.images.store };

  router.post('/images', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    if (typeof body !== 'object' || Array.isArray(body)) throw bad('The body must be a JSON object.');
    const properties: Record<string, string> = {};
    for (const [key, value] of Object.entries(body)) {
      if (READ_ONLY.has(key)) throw new OpenStackError(403, `Attribute '${key}' is read-only.`);
      if (!RESERVED.has(key)) properties[key] = propertyValue(key, value);
    }
    if (body.container_format !== undefined && body.container_format !== null) oneOf('container_format', body.container_format, [CONTAINER_FORMAT]);
    if (body.id !== undefined && (typeof body.id !== 'string' || !/^[0-9a-f-]{36}$/i.test(body.id))) throw bad('id must be a uuid.');
    if (body.name !== undefined && body.name !== null && (typeof body.name !== 'string' || body.name.length > 255)) {
      throw bad('name must be a string of at most 255 characters.');
    }
    if (body.disk_format === undefined || body.disk_format === null) {
      throw bad(`disk_format is required: Stratus stores ${DISK_FORMATS.join(' or ')} images.`);
    }
    const image = await images.create(callerOf(req), {
      ...(typeof body.id === 'string' ? { id: body.id.toLowerCase() } : {}),
      name: typeof body.name === 'string' ? body.name : '',
      diskFormat: oneOf('disk_format', body.disk_format, DISK_FORMATS),
      ...(body.visibility !== undefined ? { visibility: oneOf('visibility', body.visibility, VISIBILITIES) } : {}),
      ...(body.min_disk !== undefined ? { minDiskGb: nonNegativeInt('min_disk', body.min_disk) } : {}),
      ...(body.min_ram !== undefined ? { minRamMb: nonNegativeInt('min_ram', body.min_ram) } : {}),
      ...(body.protected !== undefined ? { protected: bool('protected', body.protected) } : {}),
      ...(body.os_hidden !== undefined ? { osHidden: bool('os_hidden', body.os_hidden) } : {}),
      ...(body.tags !== undefined ? { tags: tagList(body.tags) } : {}),
      properties,
    });
    req.log.info({ image: image.id, name: image.name }, 'image registered (glance v2)');
    res.status(201).setHeader('Location', `${deps.config.api.publicUrl}/image/v2/images/${image.id}`);
    res.json(presentImage(image));
  });

  router.get('/images', async (req, res) => {
    const page = osPage(req);
    const filters = listFilters(req);
    const found =
      filters === 'none'
        ? { items: [], next: null }
        : await images.list(callerOf(req), { limit: page.limit, ...(page.marker ? { afterId: page.marker } : {}), ...filters });
    const last = found.items[found.items.length - 1];
    res.json({
      images: found.items.map(presentImage),
      schema: '/v2/schemas/images',
      first: '/v2/images',
      ...(found.next !== null && last ? { next: `/v2/images?${nextQuery(req, last.id, page.limit)}` } : {}),
    });
  });

  router.get('/images/:image_id', async (req, res) => {
    res.json(presentImage(await images.get(callerOf(req), req.params.image_id as string)));
  });

  router.patch('/images/:image_id', express.json({ type: PATCH_TYPES, limit: '1mb' }), rejectNulCharacters, async (req, res) => {
    if (!req.is(PATCH_TYPES)) {
      throw new OpenStackError(415, `Send the patch as ${PATCH_TYPES[0]}.`);
    }
    const auth = callerOf(req);
    const image = await images.own(auth, req.params.image_id as string);
    const changes = patchChanges(image, req.body);
    const updated = Object.keys(changes).length === 0 ? image : await images.update(auth, image.id, changes);
    res.json(presentImage(updated));
  });

  router.delete('/images/:image_id', async (req, res) => {
    try {
      await deleteImage(req, data, callerOf(req), req.params.image_id as string);
    } catch (err) {
      // The one Conflict of a delete is a protected image: Glance answers 403.
      if (err instanceof Conflict) throw new OpenStackError(403, err.message);
      throw err;
    }
    res.status(204).end();
  });

  router.put('/images/:image_id/file', async (req, res) => {
    if (req.headers['content-type'] !== undefined && !req.is('application/octet-stream')) {
      throw new OpenStackError(415, 'Upload image data as application/octet-stream.');
    }
    const active = await receiveImageData(req, res, data, callerOf(req), req.params.image_id as string);
    if (active) res.status(204).end();
  });

  router.get('/images/:image_id/file', async (req, res) => {
    const image = await images.get(callerOf(req), req.params.image_id as string);
    // Glance answers 204 for an image without data.
    if (image.status !== 'active') return void res.status(204).end();
    if (image.checksumMd5 !== null) res.setHeader('Content-MD5', image.checksumMd5);
    await sendImageData(req, res, data.store, image);
  });

  return router;
}
