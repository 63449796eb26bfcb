/**
 * Keystone v3 over the identity service (services/identity.ts): password authentication scoped to
 * a project (domain `Default` only: Stratus has one domain), `X-Subject-Token`, a token body with
 * roles and the service catalog, token validation and revocation, and admin listings of projects,
 * users and roles. The tokens are the same as `/v1`'s: one issued here works there, and back.
 */
import { Router, type Request } from 'express';
import { Forbidden, NotFound, Unauthorized } from '../../core/errors';
import { hasRole, requireAdmin, ROLES, type AuthContext, type IdentityService, type Project, type User } from '../../services/identity';
import { MAX_PAGE_SIZE, type Page, type PageRequest } from '../../services/pages';
import { callerOf } from '../auth';
import { tokenAuth } from './auth';
import { serviceCatalog, VERSIONED } from './catalog';
import { OpenStackError } from './errors';
import { isoMicrosZ } from './time';

export interface KeystoneDeps {
  identity: IdentityService;
  config: { api: { publicUrl: string; region: string } };
}

const DOMAIN = { id: 'default', name: 'Default' } as const;

/** Keystone's password auth body (only the parts Stratus reads). */
interface AuthBody {
  auth?: {
    identity?: {
      methods?: unknown;
      password?: { user?: { id?: unknown; name?: unknown; password?: unknown; domain?: DomainRef } };
    };
    scope?: unknown;
  };
}
type DomainRef = { id?: unknown; name?: unknown } | undefined;

/** Only the `Default` domain exists: any other is a 401, as Keystone answers for an unknown domain. */
function assertDefaultDomain(domain: DomainRef, what: string): void {
  if (!domain) return;
  const ok = (domain.id === undefined || domain.id === DOMAIN.id) && (domain.name === undefined || domain.name === DOMAIN.name);
  if (!ok) throw new Unauthorized(`Stratus has one domain, "Default" (id "default"); the ${what} domain is not it.`);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The project a token should be scoped to, from Keystone's `scope` (none: the user's default project). */
function scopedProject(scope: unknown): string | undefined {
  if (scope === undefined || scope === null || scope === 'unscoped') return undefined;
  const project = (scope as { project?: { id?: unknown; name?: unknown; domain?: DomainRef } }).project;
  if (!project) throw new OpenStackError(400, 'Only project scope is supported (scope.project with an id, or a name in domain Default).');
  assertDefaultDomain(project.domain, 'project');
  const ref = str(project.id) ?? str(project.name);
  if (!ref) throw new OpenStackError(400, 'scope.project needs an id or a name.');
  return ref;
}

function presentRole(name: string) {
  return { id: name, name, domain_id: null, links: {} };
}

export function presentToken(auth: AuthContext, config: KeystoneDeps['config']) {
  return {
    token: {
      methods: ['password'],
      user: { id: auth.user.id, name: auth.user.name, domain: DOMAIN, password_expires_at: null },
      audit_ids: [auth.tokenId.replace(/-/g, '').slice(0, 22)],
      expires_at: isoMicrosZ(auth.expiresAt),
      issued_at: isoMicrosZ(auth.issuedAt),
      project: { id: auth.project.id, name: auth.project.name, domain: DOMAIN },
      is_domain: false,
      roles: auth.roles.map((r) => ({ id: r, name: r })),
      catalog: serviceCatalog(config.api.publicUrl, config.api.region, auth.project.id),
    },
  };
}

function presentProject(p: Project, base: string) {
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    enabled: p.enabled,
    domain_id: DOMAIN.id,
    parent_id: DOMAIN.id,
    is_domain: false,
    tags: [],
    options: {},
    links: { self: `${base}/projects/${p.id}` },
  };
}

function presentUser(u: User, base: string) {
  return {
    id: u.id,
    name: u.name,
    enabled: u.enabled,
    domain_id: DOMAIN.id,
    default_project_id: u.defaultProjectId ?? undefined,
    password_expires_at: null,
    options: {},
    links: { self: `${base}/users/${u.id}` },
  };
}

/** Every item of a paged listing (identity listings are small: projects and users of one cloud). */
async function all<T>(list: (page: PageRequest) => Promise<Page<T>>): Promise<T[]> {
  const items: T[] = [];
  let marker: string | null = null;
  do {
    const page: Page<T> = await list({ limit: MAX_PAGE_SIZE, marker });
    items.push(...page.items);
    marker = page.next;
  } while (marker);
  return items;
}

/** Keystone's `?name=` and `?enabled=` filters, exact, as the clients' find-by-name needs. */
function filtered<T extends { name: string; enabled: boolean }>(req: Request, items: T[]): T[] {
  const name = typeof req.query.name === 'string' ? req.query.name : undefined;
  const enabled = typeof req.query.enabled === 'string' ? !/^(false|0|no)$/i.test(req.query.enabled) : undefined;
  return items.filter((i) => (name === undefined || i.name === name) && (enabled === undefined || i.enabled === enabled));
}

export function keystoneRouter({ identity, config }: KeystoneDeps): Router {
  const router = Router();
  const base = `${config.api.publicUrl}${VERSIONED.identity}`;

  router.post('/auth/tokens', async (req, res) => {
    const body = (req.body ?? {}) as AuthBody;
    const id = body.auth?.identity;
    const methods = Array.isArray(id?.methods) ? id.methods : [];
    if (!methods.includes('password')) throw new Unauthorized('Stratus supports the "password" authentication method (auth.identity.methods).');
    const user = id?.password?.user;
    const password = typeof user?.password === 'string' ? user.password : undefined;
    if (!user || password === undefined || (str(user.id) === undefined && str(user.name) === undefined)) {
      throw new OpenStackError(400, 'auth.identity.password.user needs a password and an id or a name.');
    }
    assertDefaultDomain(user.domain, 'user');
    const project = scopedProject(body.auth?.scope);
    const { token, auth } = await identity.issueToken({
      ...(str(user.id) ? { userId: str(user.id) } : { username: str(user.name) }),
      password,
      ...(project !== undefined ? { project } : {}),
    });
    req.log.info({ user: auth.user.name, project: auth.project.name }, 'token issued (keystone v3)');
    res.status(201).setHeader('X-Subject-Token', token);
    res.json(presentToken(auth, config));
  });

  router.use(tokenAuth(identity));

  /** The token named by X-Subject-Token: the caller's own, or anyone's for an admin. */
  async function subject(req: Request): Promise<AuthContext> {
    const caller = callerOf(req);
    const token = req.get('x-subject-token');
    if (!token) throw new OpenStackError(400, 'Send the token to check in X-Subject-Token.');
    const found = await identity.resolveToken(token).catch(() => {
      throw new NotFound('The token could not be found (invalid, expired or revoked).');
    });
    if (found.user.id !== caller.user.id && !hasRole(caller, 'admin')) throw new Forbidden('Only an admin may check another user\'s token.');
    return found;
  }
  router.get('/auth/tokens', async (req, res) => {
    const found = await subject(req);
    res.setHeader('X-Subject-Token', req.get('x-subject-token') ?? '');
    res.json(presentToken(found, config));
  });
  router.head('/auth/tokens', async (req, res) => {
    await subject(req);
    res.status(200).end();
  });
  router.delete('/auth/tokens', async (req, res) => {
    const found = await subject(req);
    await identity.revokeToken(found.tokenId);
    res.status(204).end();
  });

  router.get('/auth/catalog', (req, res) => {
    res.json({ catalog: serviceCatalog(config.api.publicUrl, config.api.region, callerOf(req).project.id), links: { self: `${base}/auth/catalog` } });
  });
  router.get('/auth/projects', async (req, res) => {
    const projects = await identity.projectsOf(callerOf(req).user.id);
    res.json({ projects: projects.map((p) => presentProject(p, base)), links: { self: `${base}/auth/projects` } });
  });
  router.get(['/domains', '/auth/domains'], (_req, res) => {
    res.json({ domains: [{ ...DOMAIN, description: 'The only domain of Stratus', enabled: true, links: { self: `${base}/domains/default` } }] });
  });
  router.get('/domains/:domain_id', (req, res) => {
    if (req.params.domain_id !== DOMAIN.id) throw new NotFound(`Could not find domain: ${req.params.domain_id}.`);
    res.json({ domain: { ...DOMAIN, description: 'The only domain of Stratus', enabled: true, links: { self: `${base}/domains/default` } } });
  });

  // --- projects, users, roles (listings for admins; each user sees themselves) ------------
  router.get('/projects', async (req, res) => {
    requireAdmin(callerOf(req));
    const projects = filtered(req, await all((page) => identity.listProjects(page)));
    res.json({ projects: projects.map((p) => presentProject(p, base)), links: { self: `${base}/projects`, next: null, previous: null } });
  });
  router.get('/projects/:project_id', async (req, res) => {
    res.json({ project: presentProject(await identity.getProject(callerOf(req), req.params.project_id as string), base) });
  });
  router.get('/users', async (req, res) => {
    requireAdmin(callerOf(req));
    const users = filtered(req, await all((page) => identity.listUsers(page)));
    res.json({ users: users.map((u) => presentUser(u, base)), links: { self: `${base}/users`, next: null, previous: null } });
  });
  router.get('/users/:user_id', async (req, res) => {
    res.json({ user: presentUser(await identity.getUser(callerOf(req), req.params.user_id as string), base) });
  });
  router.get('/users/:user_id/projects', async (req, res) => {
    const user = await identity.getUser(callerOf(req), req.params.user_id as string);
    const projects = await identity.projectsOf(user.id);
    res.json({ projects: projects.map((p) => presentProject(p, base)), links: { self: `${base}/users/${user.id}/projects` } });
  });
  router.get('/roles', (req, res) => {
    const name = typeof req.query.name === 'string' ? req.query.name : undefined;
    res.json({ roles: ROLES.filter((r) => name === undefined || r === name).map(presentRole), links: { self: `${base}/roles` } });
  });
  router.get('/role_assignments', async (req, res) => {
    requireAdmin(callerOf(req));
    const userId = typeof req.query['user.id'] === 'string' ? req.query['user.id'] : undefined;
    const projectId = typeof req.query['scope.project.id'] === 'string' ? req.query['scope.project.id'] : undefined;
    const found = await identity.listAssignments({ ...(userId ? { userId } : {}), ...(projectId ? { projectId } : {}) });
    res.json({
      role_assignments: found.map((a) => ({
        role: { id: a.role },
        user: { id: a.userId },
        scope: { project: { id: a.projectId } },
        links: { assignment: `${base}/projects/${a.projectId}/users/${a.userId}/roles/${a.role}` },
      })),
      links: { self: `${base}/role_assignments` },
    });
  });
  return router;
}
