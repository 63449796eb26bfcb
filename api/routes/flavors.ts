/**
 * Nova's flavors: the sizes a server can have. Everyone reads the public ones; admins also see
 * private ones, and alone create and delete flavors (409 while a server uses one).
 */
import { Router } from 'express';
import type { Knex } from 'knex';
import type { components } from '../../openapi/types';
import { createFlavorService, type Flavor } from '../../services/flavors';
import type { IdentityService } from '../../services/identity';
import { authenticate, callerOf } from '../auth';
import type { JsonBody } from '../body';
import { pageQuery } from '../pagination';
import { bodyFields } from './networks';

function presentFlavor(f: Flavor): components['schemas']['Flavor'] {
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
  const flavors = createFlavorService(db);
  const router = Router();
  router.use('/v1/flavors', authenticate(identity));

  router.get('/v1/flavors', async (req, res) => {
    const page = await flavors.list(callerOf(req), pageQuery(req));
    res.json({ flavors: page.items.map(presentFlavor), next: page.next });
  });

  router.post('/v1/flavors', async (req, res) => {
    const body = req.body as JsonBody<'createFlavor'>;
    const flavor = await bodyFields(BODY_FIELDS, () =>
      flavors.create(callerOf(req), {
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
    res.json(presentFlavor(await flavors.get(callerOf(req), req.params.flavor_id as string)));
  });

  router.delete('/v1/flavors/:flavor_id', async (req, res) => {
    await flavors.remove(callerOf(req), req.params.flavor_id as string);
    res.status(204).end();
  });

  return router;
}
