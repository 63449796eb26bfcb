/**
 * Nova's flavors: the sizes a server can have. Everyone reads the public ones; admins also see
 * private ones, and alone create and delete flavors (409 while a server uses one).
 */
import { Router } from 'express';
import type { Knex } from 'knex';
import { NotFound } from '../../core/errors';
import * as flavors from '../../db/repositories/flavors';
import type { components, operations } from '../../openapi/types';
import { hasRole, type AuthContext, type IdentityService } from '../../services/identity';
import { adminOnly, authenticate, callerOf } from '../auth';
import { pageQuery } from '../pagination';
import { bodyFields } from './networks';

function presentFlavor(f: flavors.Flavor): components['schemas']['Flavor'] {
  return {
    id: f.id,
    name: f.name,
    vcpus: f.vcpus,
    ram_mb: f.ramMb,
    disk_gb: f.diskGb,
    is_public: f.isPublic,
    created_at: new Date(f.createdAt).toISOString(),
  };
}

const BODY_FIELDS = ['name', 'vcpus', 'ram_mb', 'disk_gb', 'is_public'];

export function flavorsRouter({ db, identity }: { db: Knex; identity: IdentityService }): Router {
  const router = Router();
  router.use('/v1/flavors', authenticate(identity));

  /** A private flavor is "not found" to non-admins, like another project's resources. */
  async function visibleFlavor(auth: AuthContext, id: string): Promise<flavors.Flavor> {
    const flavor = await flavors.get(db, id);
    if (!flavor || (!flavor.isPublic && !hasRole(auth, 'admin'))) throw new NotFound(`flavor ${id} not found`);
    return flavor;
  }

  router.get('/v1/flavors', async (req, res) => {
    const auth = callerOf(req);
    const page = await flavors.list(db, { ...pageQuery(req), ...(hasRole(auth, 'admin') ? {} : { isPublic: true }) });
    res.json({ flavors: page.items.map(presentFlavor), next: page.next });
  });

  router.post('/v1/flavors', adminOnly, async (req, res) => {
    const body = req.body as operations['createFlavor']['requestBody']['content']['application/json'];
    const flavor = await bodyFields(BODY_FIELDS, () =>
      flavors.create(db, {
        name: body.name,
        vcpus: body.vcpus,
        ramMb: body.ram_mb,
        diskGb: body.disk_gb,
        ...(body.is_public !== undefined ? { isPublic: body.is_public } : {}),
      }),
    );
    req.log.info({ flavor: flavor.name }, 'flavor created');
    res.status(201).json(presentFlavor(flavor));
  });

  router.get('/v1/flavors/:flavor_id', async (req, res) => {
    res.json(presentFlavor(await visibleFlavor(callerOf(req), req.params.flavor_id as string)));
  });

  router.delete('/v1/flavors/:flavor_id', adminOnly, async (req, res) => {
    await flavors.remove(db, req.params.flavor_id as string);
    res.status(204).end();
  });

  return router;
}
