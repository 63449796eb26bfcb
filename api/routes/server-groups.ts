/** Nova's server groups: a policy that places the servers created with the group's id. */
import { Router } from 'express';
import type { Knex } from 'knex';
import { Conflict } from '../../core/errors';
import { visibleGroup } from '../../services/server-requests';
import * as serverGroups from '../../db/repositories/server-groups';
import type { components } from '../../openapi/types';
import { hasRole, type AuthContext, type IdentityService } from '../../services/identity';
import { authenticate, callerOf, requireWriter } from '../auth';

function present(auth: AuthContext, g: serverGroups.ServerGroup, members: serverGroups.Member[]): components['schemas']['ServerGroup'] {
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
  const router = Router();
  router.use('/v1/server-groups', authenticate(identity));

  router.get('/v1/server-groups', async (req, res) => {
    const auth = callerOf(req);
    const groups = await serverGroups.list(db, hasRole(auth, 'admin') ? undefined : auth.project.id);
    const members = await serverGroups.members(db, groups.map((g) => g.id));
    res.json({ server_groups: groups.map((g) => present(auth, g, members[g.id] ?? [])) });
  });

  router.post('/v1/server-groups', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as { name: string; policy: serverGroups.GroupPolicy };
    const group = await serverGroups.create(db, { projectId: auth.project.id, name: body.name, policy: body.policy });
    res.status(201).json(present(auth, group, []));
  });

  router.get('/v1/server-groups/:group_id', async (req, res) => {
    const auth = callerOf(req);
    const group = await visibleGroup(db, auth, req.params.group_id as string);
    const members = await serverGroups.members(db, [group.id]);
    res.json(present(auth, group, members[group.id] ?? []));
  });

  router.delete('/v1/server-groups/:group_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const group = await visibleGroup(db, auth, req.params.group_id as string);
    const members = (await serverGroups.members(db, [group.id]))[group.id] ?? [];
    if (members.length > 0) throw new Conflict(`server group ${group.id} has ${members.length} member(s): delete them first`);
    await serverGroups.remove(db, group.id);
    res.status(204).end();
  });
  return router;
}
