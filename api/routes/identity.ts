/** Keystone's routes: tokens, catalog, projects, users, role assignments. */
import { Router } from 'express';
import type { Config } from '../../core/config';
import type { Knex } from 'knex';
import type { components } from '../../openapi/types';
import type { AuthContext, IdentityService, Project, ProjectChanges, Role, User } from '../../services/identity';
import { adminOnly, authenticate, callerOf } from '../auth';
import { pageQuery } from '../pagination';

type Schemas = components['schemas'];

const iso = (d: Date | string) => new Date(d).toISOString();

function presentProject(p: Project): Schemas['Project'] {
  return { id: p.id, name: p.name, description: p.description, enabled: p.enabled, created_at: iso(p.createdAt) };
}

function presentUser(u: User): Schemas['User'] {
  return { id: u.id, name: u.name, enabled: u.enabled, default_project_id: u.defaultProjectId, created_at: iso(u.createdAt) };
}

function presentToken(auth: AuthContext): Schemas['TokenInfo'] {
  return { expires_at: iso(auth.expiresAt), user: auth.user, project: auth.project, roles: auth.roles };
}

export interface IdentityRoutesDeps {
  db: Knex;
  identity: IdentityService;
  config: Pick<Config, 'api' | 'temporal'>;
}

export function identityRouter({ identity, config }: IdentityRoutesDeps): Router {
  const router = Router();
  const authed = authenticate(identity);

  // --- tokens -----------------------------------------------------------------------------
  router.post('/v1/auth/tokens', async (req, res) => {
    const { token, auth } = await identity.issueToken(req.body as { username: string; password: string; project: string });
    req.log.info({ user: auth.user.name, project: auth.project.name }, 'token issued');
    res.status(201).json({ token, ...presentToken(auth) });
  });
  router.get('/v1/auth/tokens/current', authed, (req, res) => {
    res.json(presentToken(callerOf(req)));
  });
  router.delete('/v1/auth/tokens/current', authed, async (req, res) => {
    await identity.revokeToken(callerOf(req).tokenId);
    res.status(204).end();
  });

  // --- catalog ----------------------------------------------------------------------------
  router.get('/v1/catalog', authed, (_req, res) => {
    const api = config.api.publicUrl;
    const ns = encodeURIComponent(config.temporal.namespace);
    res.json({
      catalog: [
        { type: 'compute', name: 'stratus', url: `${api}/v1` },
        { type: 'identity', name: 'stratus-identity', url: `${api}/v1/auth` },
        { type: 'docs', name: 'api-docs', url: `${api}/docs` },
        { type: 'openapi', name: 'openapi', url: `${api}/openapi.yaml` },
        { type: 'operations', name: 'temporal-ui', url: `${config.temporal.uiUrl}/namespaces/${ns}/workflows` },
      ],
    });
  });

  // --- projects ---------------------------------------------------------------------------
  router.get('/v1/projects', authed, adminOnly, async (req, res) => {
    const page = await identity.listProjects(pageQuery(req));
    res.json({ projects: page.items.map(presentProject), next: page.next });
  });
  router.post('/v1/projects', authed, adminOnly, async (req, res) => {
    const project = await identity.createProject(req.body as { name: string; description?: string; enabled?: boolean });
    res.status(201).json(presentProject(project));
  });
  router.get('/v1/projects/:project_id', authed, async (req, res) => {
    res.json(presentProject(await identity.getProject(callerOf(req), req.params.project_id as string)));
  });
  router.patch('/v1/projects/:project_id', authed, adminOnly, async (req, res) => {
    const id = req.params.project_id as string;
    res.json(presentProject(await identity.updateProject(callerOf(req), id, req.body as ProjectChanges)));
  });
  router.delete('/v1/projects/:project_id', authed, adminOnly, async (req, res) => {
    await identity.deleteProject(req.params.project_id as string);
    res.status(204).end();
  });

  // --- users ------------------------------------------------------------------------------
  router.get('/v1/users', authed, adminOnly, async (req, res) => {
    const page = await identity.listUsers(pageQuery(req));
    res.json({ users: page.items.map(presentUser), next: page.next });
  });
  router.post('/v1/users', authed, adminOnly, async (req, res) => {
    const body = req.body as { name: string; password: string; enabled?: boolean; default_project_id?: string | null };
    const user = await identity.createUser({
      name: body.name,
      password: body.password,
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
      defaultProjectId: body.default_project_id ?? null,
    });
    res.status(201).json(presentUser(user));
  });
  router.get('/v1/users/:user_id', authed, async (req, res) => {
    res.json(presentUser(await identity.getUser(callerOf(req), req.params.user_id as string)));
  });
  router.patch('/v1/users/:user_id', authed, async (req, res) => {
    const body = req.body as { name?: string; password?: string; enabled?: boolean; default_project_id?: string | null };
    const { default_project_id, ...rest } = body;
    const user = await identity.updateUser(callerOf(req), req.params.user_id as string, {
      ...rest,
      ...(default_project_id !== undefined ? { defaultProjectId: default_project_id } : {}),
    });
    res.json(presentUser(user));
  });
  router.delete('/v1/users/:user_id', authed, adminOnly, async (req, res) => {
    await identity.deleteUser(callerOf(req), req.params.user_id as string);
    res.status(204).end();
  });

  // --- role assignments -------------------------------------------------------------------
  router.get('/v1/role_assignments', authed, adminOnly, async (req, res) => {
    const filter = {
      ...(typeof req.query.user_id === 'string' ? { userId: req.query.user_id } : {}),
      ...(typeof req.query.project_id === 'string' ? { projectId: req.query.project_id } : {}),
    };
    const rows = await identity.listAssignments(filter);
    res.json({
      role_assignments: rows.map((r) => ({ user_id: r.userId, project_id: r.projectId, role: r.role as Role })),
      next: null,
    });
  });
  router.put('/v1/projects/:project_id/users/:user_id/roles/:role', authed, adminOnly, async (req, res) => {
    const { project_id, user_id, role } = req.params as { project_id: string; user_id: string; role: Role };
    await identity.assignRole(project_id, user_id, role);
    res.status(204).end();
  });
  router.delete('/v1/projects/:project_id/users/:user_id/roles/:role', authed, adminOnly, async (req, res) => {
    const { project_id, user_id, role } = req.params as { project_id: string; user_id: string; role: Role };
    await identity.revokeRole(project_id, user_id, role, callerOf(req));
    res.status(204).end();
  });

  return router;
}
