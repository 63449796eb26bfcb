/** Project quotas: limit, used and reserved per resource; admins set the limits (services/quotas.ts). */
import { Router } from 'express';
import type { Knex } from 'knex';
import type { components } from '../../openapi/types';
import type { IdentityService } from '../../services/identity';
import { createQuotaService, type QuotaAmounts, type QuotaLimits, type QuotaReport } from '../../services/quotas';
import { authenticate, callerOf } from '../auth';

const present = (projectId: string, report: QuotaReport): components['schemas']['Quota'] => ({ project_id: projectId, ...report });

export function quotasRouter({ db, identity, defaults }: { db: Knex; identity: IdentityService; defaults: QuotaLimits }): Router {
  const service = createQuotaService(db, defaults, identity);
  const router = Router();
  router.use('/v1/projects/:project_id/quota', authenticate(identity));

  router.get('/v1/projects/:project_id/quota', async (req, res) => {
    const projectId = req.params.project_id as string;
    // Members see their own project's quota; another project's does not exist for them.
    res.json(present(projectId, await service.report(callerOf(req), projectId)));
  });

  router.put('/v1/projects/:project_id/quota', async (req, res) => {
    const projectId = req.params.project_id as string;
    const report = await service.setLimits(callerOf(req), projectId, req.body as QuotaAmounts);
    req.log.info({ project: projectId, limits: req.body as unknown }, 'quota changed');
    res.json(present(projectId, report));
  });
  return router;
}
