/** Cinder's routes: volumes. Create and delete answer 202 with the operation that does the work. */
import { Router } from 'express';
import type { components } from '../../openapi/types';
import { hasRole, type AuthContext, type IdentityService } from '../../services/identity';
import type { QuotaLimits } from '../../services/compute';
import { createVolumeService, type Volume } from '../../services/volumes';
import { authenticate, callerOf, requireWriter } from '../auth';
import type { JsonBody } from '../body';
import { presentOperation, type OperationDeps } from '../operations';
import { createVolumeOperation, deleteVolumeOperation } from '../volume-operations';
import { pageQuery } from '../pagination';

function presentVolume(auth: AuthContext, v: Volume): components['schemas']['Volume'] {
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

export function volumesRouter(deps: OperationDeps & { identity: IdentityService; quotaDefaults: QuotaLimits }): Router {
  const volumes = createVolumeService(deps.db, deps.quotaDefaults);
  const router = Router();
  router.use('/v1/volumes', authenticate(deps.identity));

  router.post('/v1/volumes', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as JsonBody<'createVolume'>;
    const { volume, op } = await createVolumeOperation(deps, volumes, auth, {
      name: body.name,
      sizeGb: body.size_gb,
      ...(body.image_id ? { imageId: body.image_id } : {}),
      ...(body.availability_zone !== undefined ? { availabilityZone: body.availability_zone } : {}),
    });
    res.status(202).json({ volume: presentVolume(auth, volume), operation: await presentOperation(deps, op) });
  });

  router.get('/v1/volumes', async (req, res) => {
    const auth = callerOf(req);
    const page = await volumes.list(auth, pageQuery(req));
    res.json({ volumes: page.items.map((v) => presentVolume(auth, v)), next: page.next });
  });

  router.get('/v1/volumes/:volume_id', async (req, res) => {
    const auth = callerOf(req);
    res.json(presentVolume(auth, await volumes.get(auth, req.params.volume_id as string)));
  });

  router.delete('/v1/volumes/:volume_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const op = await deleteVolumeOperation(deps, volumes, auth, req.params.volume_id as string);
    res.status(202).json({ operation: await presentOperation(deps, op) });
  });

  return router;
}
