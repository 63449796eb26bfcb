/** The ledger of leftovers (admin only): what undos could not clean up, and what the reconciler retries. */
import { Router } from 'express';
import type { Knex } from 'knex';
import type { components } from '../../openapi/types';
import type { IdentityService } from '../../services/identity';
import { createLeftoverService, type Leftover } from '../../services/leftovers';
import { adminOnly, authenticate, callerOf } from '../auth';

function presentLeftover(l: Leftover): components['schemas']['Leftover'] {
  return {
    id: l.id,
    operation_id: l.operationId,
    resource_type: l.resourceType,
    resource_id: l.resourceId,
    host: l.host,
    action: { activity: l.action.activity, args: l.action.args },
    error: l.error,
    attempts: l.attempts,
    status: l.status,
    created_at: new Date(l.createdAt).toISOString(),
    updated_at: new Date(l.updatedAt).toISOString(),
    done_at: l.doneAt ? new Date(l.doneAt).toISOString() : null,
  };
}

export function leftoversRouter(deps: { db: Knex; identity: IdentityService }): Router {
  const service = createLeftoverService(deps.db);
  const router = Router();
  router.get('/v1/leftovers', authenticate(deps.identity), adminOnly, async (req, res) => {
    const status = req.query.status === 'done' ? 'done' : 'pending';
    const limit = Number(req.query.limit ?? 100);
    res.json({ leftovers: (await service.list(callerOf(req), { status, limit })).map(presentLeftover) });
  });
  return router;
}
