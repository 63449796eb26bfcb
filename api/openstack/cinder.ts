/**
 * Cinder v3 (block storage), mounted at /volume/v3/:project_id (mergeParams), rendered at 3.0: volumes
 * (create, list, detail, show, delete) with their attachments, and the one volume type Stratus has.
 * A translation at the edge over services/volumes.ts and the same volume workflows as `/v1/volumes`
 * (api/volume-operations.ts); a volume made here is `/v1`'s volume, and back.
 *
 * The project in the path must be the token's (an admin may read another project's volumes through
 * its path); anything else is Cinder's 404, so project ids cannot be probed. Shapes follow what
 * openstacksdk 4.22 and gophercloud read (../shared/notes/openstack-compat.md §6): lowercase
 * statuses, `attachments` always a list, `bootable` a string, timestamps with microseconds and no
 * zone, `os-vol-tenant-attr:tenant_id`.
 */
import { createHash } from 'node:crypto';
import { Router, type Request } from 'express';
import { NotFound } from '../../core/errors';
import { hasRole, type AuthContext } from '../../services/identity';
import { createVolumeService, VOLUME_STATUSES, type Volume, type VolumeStatus } from '../../services/volumes';
import { callerOf, requireWriter } from '../auth';
import { createVolumeOperation, deleteVolumeOperation } from '../volume-operations';
import { VERSIONED } from './catalog';
import { OpenStackError } from './errors';
import type { OpenStackDeps } from './index';
import { osPage, pageLinks } from './paging';
import { isoMicros } from './time';

/** The zone hosts are in unless configured otherwise (migration 0006); a volume that asked for none shows it. */
const DEFAULT_ZONE = 'nova';

/**
 * Stratus has one kind of volume (a qcow2 in the host's libvirt storage pool), so one volume type,
 * with a fixed id. Its name is Cinder's default type's name, `__DEFAULT__`.
 */
export const DEFAULT_VOLUME_TYPE = {
  id: '5b4a8a05-6b8e-4f4b-9d1f-7a9c4d2e1f00',
  name: '__DEFAULT__',
  description: 'Default Volume Type: a qcow2 volume in the storage pool of the host that runs its server',
  is_public: true,
  extra_specs: {},
  qos_specs_id: null,
} as const;

/** A Cinder attachment id for the (volume, server) pair; Stratus keeps no separate attachment record. */
export function attachmentId(volumeId: string, serverId: string): string {
  const h = createHash('sha256').update(`attachment\n${volumeId}\n${serverId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${h.slice(18, 20)}-${h.slice(20, 32)}`;
}

/** The fields of a create body Stratus cannot honour when they carry a value (`null` is what the clients send). */
const UNSUPPORTED_CREATE_FIELDS = ['snapshot_id', 'source_volid', 'backup_id', 'consistencygroup_id', 'group_id', 'source_replica', 'scheduler_hints'] as const;

interface CreateBody {
  volume?: {
    size?: unknown;
    name?: unknown;
    description?: unknown;
    volume_type?: unknown;
    availability_zone?: unknown;
    imageRef?: unknown;
    metadata?: unknown;
    multiattach?: unknown;
    [key: string]: unknown;
  };
}

const isSet = (v: unknown) => v !== undefined && v !== null;

/** What the body asks for, as the service's input; a value Stratus cannot store is a 400 saying so. */
function parseCreate(body: CreateBody): { name: string; sizeGb: number; imageId?: string; availabilityZone?: string } {
  const v = body.volume;
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new OpenStackError(400, 'The request body must be {"volume": {...}}.');
  if (typeof v.size !== 'number' && typeof v.size !== 'string') throw new OpenStackError(400, 'volume.size is required: the size in GiB, an integer > 0.');
  const size = Number(v.size);
  if (!Number.isSafeInteger(size) || size <= 0) throw new OpenStackError(400, `Invalid input received: volume.size must be an integer > 0, got ${JSON.stringify(v.size)}.`);
  if (isSet(v.name) && typeof v.name !== 'string') throw new OpenStackError(400, 'volume.name must be a string.');
  if (isSet(v.description) && v.description !== '') throw new OpenStackError(400, 'Stratus does not store volume descriptions: leave volume.description out.');
  if (isSet(v.volume_type) && v.volume_type !== DEFAULT_VOLUME_TYPE.name && v.volume_type !== DEFAULT_VOLUME_TYPE.id) {
    throw new OpenStackError(404, `Volume type ${String(v.volume_type)} could not be found (Stratus has one type, ${DEFAULT_VOLUME_TYPE.name}).`);
  }
  if (isSet(v.availability_zone) && typeof v.availability_zone !== 'string') throw new OpenStackError(400, 'volume.availability_zone must be a string.');
  if (isSet(v.imageRef) && typeof v.imageRef !== 'string') throw new OpenStackError(400, 'volume.imageRef must be an image id.');
  if (isSet(v.metadata) && (typeof v.metadata !== 'object' || Object.keys(v.metadata as object).length > 0)) {
    throw new OpenStackError(400, 'Stratus does not store volume metadata: leave volume.metadata out (or empty).');
  }
  if (v.multiattach === true) throw new OpenStackError(400, 'Stratus volumes attach to one server at a time (multiattach is not supported).');
  for (const field of UNSUPPORTED_CREATE_FIELDS) {
    if (isSet(v[field])) throw new OpenStackError(400, `Stratus cannot create a volume from volume.${field}: only blank volumes and volumes from an image (imageRef).`);
  }
  return {
    name: typeof v.name === 'string' ? v.name : '',
    sizeGb: size,
    ...(typeof v.imageRef === 'string' && v.imageRef !== '' ? { imageId: v.imageRef } : {}),
    ...(typeof v.availability_zone === 'string' && v.availability_zone !== '' ? { availabilityZone: v.availability_zone } : {}),
  };
}

function links(base: string, projectId: string, id: string) {
  return [
    { rel: 'self', href: `${base}${VERSIONED.volume}/${projectId}/volumes/${id}` },
    { rel: 'bookmark', href: `${base}/volume/${projectId}/volumes/${id}` },
  ];
}

/** Cinder's `attachments`: the server the volume is on (in-use, or on its way there or back). */
function attachments(v: Volume) {
  if (!v.serverId || !['attaching', 'in-use', 'detaching'].includes(v.status)) return [];
  return [
    {
      id: v.id,
      attachment_id: attachmentId(v.id, v.serverId),
      volume_id: v.id,
      server_id: v.serverId,
      host_name: v.host,
      device: v.device ? `/dev/${v.device}` : null,
      // Stratus keeps no attach time; the last status change of an in-use volume is its attachment.
      attached_at: v.status === 'in-use' ? isoMicros(v.updatedAt) : null,
    },
  ];
}

/** The volume as Cinder 3.0's volume-show renders it. */
export function presentVolume(auth: AuthContext, v: Volume, base: string) {
  return {
    id: v.id,
    name: v.name,
    description: null,
    status: v.status,
    size: v.sizeGb,
    availability_zone: v.availabilityZone ?? DEFAULT_ZONE,
    bootable: v.imageId ? 'true' : 'false',
    encrypted: false,
    multiattach: false,
    volume_type: DEFAULT_VOLUME_TYPE.name,
    snapshot_id: null,
    source_volid: null,
    consistencygroup_id: null,
    replication_status: null,
    metadata: {},
    volume_image_metadata: v.imageId ? { image_id: v.imageId } : undefined,
    attachments: attachments(v),
    user_id: null,
    'os-vol-tenant-attr:tenant_id': v.projectId,
    ...(hasRole(auth, 'admin') ? { 'os-vol-host-attr:host': v.host, 'os-vol-mig-status-attr:migstat': null, 'os-vol-mig-status-attr:name_id': null } : {}),
    created_at: isoMicros(v.createdAt),
    updated_at: isoMicros(v.updatedAt),
    links: links(base, v.projectId, v.id),
  };
}

const STATUSES = new Set<string>(VOLUME_STATUSES.filter((s) => s !== 'deleted'));

function queryString(req: Request, key: string): string | undefined {
  const v = req.query[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function cinderRouter(deps: OpenStackDeps): Router {
  const volumes = createVolumeService(deps.db, deps.quotaDefaults);
  const base = deps.config.api.publicUrl;
  const router = Router({ mergeParams: true });

  /**
   * The project in the path: the token's, or (for an admin) any project, for reading. Anything else
   * does not exist for the caller (404, as Stratus answers for other projects' resources).
   */
  router.use((req, _res, next) => {
    const auth = callerOf(req);
    const projectId = req.params.project_id as string;
    if (projectId === auth.project.id) return next();
    if (hasRole(auth, 'admin')) {
      if (req.method === 'GET') return next();
      throw new OpenStackError(403, `Volumes are created and deleted in the token's project: use ${VERSIONED.volume}/${auth.project.id}.`);
    }
    throw new NotFound(`project ${projectId} not found (the token is scoped to ${auth.project.id})`);
  });

  /** A list request: the path's project (all projects for an admin's `all_tenants`), exact name and status filters, id paging. */
  async function listPage(req: Request) {
    const auth = callerOf(req);
    const page = osPage(req);
    const allTenants = /^(1|true|yes)$/i.test(queryString(req, 'all_tenants') ?? '') && hasRole(auth, 'admin');
    const status = queryString(req, 'status');
    if (status !== undefined && !STATUSES.has(status)) return { auth, page, items: [] as Volume[], next: null };
    const result = await volumes.list(
      auth,
      // OpenStack's marker is the last id seen: a page after it (400 naming `marker` when the list does not hold it).
      { limit: page.limit, ...(page.marker ? { afterId: page.marker } : {}) },
      {
        ...(allTenants ? {} : { projectId: req.params.project_id as string }),
        ...(queryString(req, 'name') !== undefined ? { name: queryString(req, 'name') } : {}),
        ...(status !== undefined ? { status: status as VolumeStatus } : {}),
      },
    );
    return { auth, page, items: result.items, next: result.next };
  }

  router.post('/volumes', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const { volume } = await createVolumeOperation(deps, volumes, auth, parseCreate(req.body as CreateBody));
    res.status(202).json({ volume: presentVolume(auth, volume, base) });
  });

  router.get('/volumes', async (req, res) => {
    const { page, items, next } = await listPage(req);
    res.json({
      volumes: items.map((v) => ({ id: v.id, name: v.name, links: links(base, v.projectId, v.id) })),
      ...(next ? { volumes_links: pageLinks(req, base, items, page) } : {}),
    });
  });

  router.get('/volumes/detail', async (req, res) => {
    const { auth, page, items, next } = await listPage(req);
    res.json({ volumes: items.map((v) => presentVolume(auth, v, base)), ...(next ? { volumes_links: pageLinks(req, base, items, page) } : {}) });
  });

  router.get('/volumes/:volume_id', async (req, res) => {
    const auth = callerOf(req);
    res.json({ volume: presentVolume(auth, await volumes.get(auth, req.params.volume_id as string), base) });
  });

  // `openstack volume set --name/--description`: a readable refusal rather than a bare 404.
  router.put('/volumes/:volume_id', async (req) => {
    const auth = callerOf(req);
    await volumes.get(auth, req.params.volume_id as string);
    throw new OpenStackError(400, 'Stratus volumes keep the name they were created with and store no description: volume updates are not supported.');
  });

  // `cascade` and `force` (the SDK sends both, False) are accepted; neither changes anything here.
  router.delete('/volumes/:volume_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    await deleteVolumeOperation(deps, volumes, auth, req.params.volume_id as string);
    res.status(202).end();
  });

  router.get('/types', (_req, res) => {
    res.json({ volume_types: [DEFAULT_VOLUME_TYPE] });
  });
  router.get(['/types/default', `/types/${DEFAULT_VOLUME_TYPE.id}`, `/types/${DEFAULT_VOLUME_TYPE.name}`], (_req, res) => {
    res.json({ volume_type: DEFAULT_VOLUME_TYPE });
  });

  return router;
}
