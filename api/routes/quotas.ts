/** Project quotas: limit, used and reserved per resource; admins set the limits. */
import { Router } from 'express';
import type { Knex } from 'knex';
import { NotFound } from '../../core/errors';
import * as projects from '../../db/repositories/projects';
import * as quotas from '../../db/repositories/quotas';
import type { components } from '../../openapi/types';
import { hasRole, requireAdmin, type IdentityService } from '../../services/identity';
import { authenticate, callerOf } from '../auth';

export function quotasRouter({ db, identity, defaults }: { db: Knex; identity: IdentityService; defaults: quotas.QuotaLimits }): Router {
  const router = Router();
  router.use('/v1/projects/:project_id/quota', authenticate(identity));

  async function present(projectId: string): Promise<components['schemas']['Quota']> {
    return { project_id: projectId, ...(await quotas.report(db, projectId, defaults)) };
  }

  router.get('/v1/projects/:project_id/quota', async (req, res) => {
    const auth = callerOf(req);
    const projectId = req.params.project_id as string;
    // Members see their own project's quota; another project's does not exist for them.
    if ((projectId !== auth.project.id && !hasRole(auth, 'admin')) || !(await projects.getById(db, projectId))) {
      throw new NotFound(`project ${projectId} not found`);
    }
    res.json(await present(projectId));
  });

  router.put('/v1/projects/:project_id/quota', async (req, res) => {
    const auth = callerOf(req);
    requireAdmin(auth);
    const projectId = req.params.project_id as string;
    if (!(await projects.getById(db, projectId))) throw new NotFound(`project ${projectId} not found`);
    await quotas.setLimits(db, projectId, req.body as quotas.QuotaAmounts);
    req.log.info({ project: projectId, limits: req.body as unknown }, 'quota changed');
    res.json(await present(projectId));
  });
  return router;
}
