/** Cinder's routes: volumes. Create and delete answer 202 with the operation that does the work. */
import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { Conflict, NotFound } from '../../core/errors';
import * as images from '../../db/repositories/images';
import * as volumes from '../../db/repositories/volumes';
import * as quotas from '../../db/repositories/quotas';
import { volumeQuotaAmounts } from '../../services/quotas';
import { assertKnownZone } from '../../services/server-requests';
import type { components } from '../../openapi/types';
import { hasRole, type AuthContext, type IdentityService } from '../../services/identity';
import { authenticate, callerOf, requireWriter } from '../auth';
import { OPERATIONS } from '../../workflows/catalog';
import { presentOperation, startOperation, type OperationDeps } from '../operations';
import { pageQuery } from '../pagination';

function presentVolume(auth: AuthContext, v: volumes.Volume): components['schemas']['Volume'] {
  return {
    id: v.id,
    name: v.name,
    size_gb: v.sizeGb,
    status: v.status,
    image_id: v.imageId,
    server_id: v.serverId,
    device: v.device,
    ...(hasRole(auth, 'admin') ? { host: v.host } : {}),
    delete_on_termination: v.deleteOnTermination,
    availability_zone: v.availabilityZone,
    created_at: v.createdAt.toISOString(),
    updated_at: v.updatedAt.toISOString(),
  };
}

export function volumesRouter(deps: OperationDeps & { identity: IdentityService; quotaDefaults: quotas.QuotaLimits }): Router {
  const { db } = deps;
  const router = Router();
  router.use('/v1/volumes', authenticate(deps.identity));

  async function visibleVolume(auth: AuthContext, id: string): Promise<volumes.Volume> {
    const volume = await volumes.get(db, id);
    if (!volume || volume.status === 'deleted' || (volume.projectId !== auth.project.id && !hasRole(auth, 'admin'))) {
      throw new NotFound(`volume ${id} not found`);
    }
    return volume;
  }

  router.post('/v1/volumes', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as { name: string; size_gb: number; image_id?: string; availability_zone?: string };
    await assertKnownZone(db, body.availability_zone, 'body.availability_zone');
    if (body.image_id) {
      const image = await images.getVisible(db, body.image_id, auth.project.id);
      if (!image || image.status !== 'active') {
        throw new NotFound(`image ${body.image_id} not found or not active`, [{ field: 'body.image_id', message: 'no such active image' }]);
      }
    }
    const volumeId = randomUUID();
    // Quota first (403 naming the resource, nothing created), then the record, in one transaction.
    const volume = await db.transaction(async (trx) => {
      await quotas.reserve(trx, { projectId: auth.project.id, ownerId: volumeId, amounts: volumeQuotaAmounts(body.size_gb), defaults: deps.quotaDefaults });
      return volumes.create(trx, {
        id: volumeId,
        projectId: auth.project.id,
        name: body.name,
        sizeGb: body.size_gb,
        ...(body.image_id ? { imageId: body.image_id } : {}),
        status: 'creating',
        availabilityZone: body.availability_zone ?? null,
      });
    });
    try {
      const op = await startOperation(deps, {
        def: OPERATIONS.volumeCreate,
        resourceId: volume.id,
        projectId: auth.project.id,
        input: (operationId) => ({ volumeId: volume.id, projectId: auth.project.id, operationId, sizeGb: body.size_gb, ...(body.image_id ? { imageId: body.image_id } : {}) }),
      });
      res.status(202).json({ volume: presentVolume(auth, volume), operation: await presentOperation(deps, op, false) });
    } catch (err) {
      await volumes.remove(db, volume.id).catch(() => undefined);
      await quotas.release(db, volume.id).catch(() => undefined);
      throw err;
    }
  });

  router.get('/v1/volumes', async (req, res) => {
    const auth = callerOf(req);
    const page = await volumes.list(db, { ...pageQuery(req), ...(hasRole(auth, 'admin') ? {} : { projectId: auth.project.id }) });
    res.json({ volumes: page.items.filter((v) => v.status !== 'deleted').map((v) => presentVolume(auth, v)), next: page.next });
  });

  router.get('/v1/volumes/:volume_id', async (req, res) => {
    const auth = callerOf(req);
    res.json(presentVolume(auth, await visibleVolume(auth, req.params.volume_id as string)));
  });

  router.delete('/v1/volumes/:volume_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const volume = await visibleVolume(auth, req.params.volume_id as string);
    if (volume.status !== 'available' && volume.status !== 'error') {
      throw new Conflict(`volume ${volume.id} is ${volume.status}: only available or error volumes can be deleted`);
    }
    await volumes.transition(db, volume.id, { from: ['available', 'error'], to: 'deleting' });
    try {
      const op = await startOperation(deps, {
        def: OPERATIONS.volumeDelete,
        resourceId: volume.id,
        projectId: volume.projectId,
        input: (id) => ({ volumeId: volume.id, operationId: id, host: volume.host }),
      });
      res.status(202).json({ operation: await presentOperation(deps, op, false) });
    } catch (err) {
      await volumes.transition(db, volume.id, { from: ['deleting'], to: volume.status });
      throw err;
    }
  });

  return router;
}
