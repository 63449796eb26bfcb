/** Nova's server groups: a policy that places the servers created with the group's id (services/server-groups.ts). */
import { Router } from 'express';
import type { Knex } from 'knex';
import type { components } from '../../openapi/types';
import { hasRole, type AuthContext, type IdentityService } from '../../services/identity';
import { createServerGroupService, type GroupDetails, type GroupPolicy } from '../../services/server-groups';
import { authenticate, callerOf, requireWriter } from '../auth';

/** Members' hosts are shown to admins only. */
function present(auth: AuthContext, { group: g, members }: GroupDetails): components['schemas']['ServerGroup'] {
  const admin = hasRole(auth, 'admin');
  return {
    id: g.id,
    project_id: g.projectId,
    name: g.name,
    policy: g.policy,
    members: members.map((m) => ({ server_id: m.serverId, host: admin ? m.host : null })),
    created_at: new Date(g.createdAt).toISOString(),
  };
}

export function serverGroupsRouter({ db, identity }: { db: Knex; identity: IdentityService }): Router {
  const service = createServerGroupService(db);
  const router = Router();
  router.use('/v1/server-groups', authenticate(identity));

  router.get('/v1/server-groups', async (req, res) => {
    const auth = callerOf(req);
    res.json({ server_groups: (await service.list(auth)).map((d) => present(auth, d)) });
  });

  router.post('/v1/server-groups', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as { name: string; policy: GroupPolicy };
    const group = await service.create(auth, { name: body.name, policy: body.policy });
    res.status(201).json(present(auth, { group, members: [] }));
  });

  router.get('/v1/server-groups/:group_id', async (req, res) => {
    const auth = callerOf(req);
    res.json(present(auth, await service.show(auth, req.params.group_id as string)));
  });

  router.delete('/v1/server-groups/:group_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    await service.remove(auth, req.params.group_id as string);
    res.status(204).end();
  });
  return router;
}
