/**
 * Identity (Keystone's job): tokens, projects, users and role assignments. Throws domain errors;
 * the API maps them to problem+json. Tokens are random, shown once, and stored only as a SHA-256
 * hash, so a database leak does not leak usable tokens.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { Forbidden, InvalidInput, NotFound, Unauthorized } from '../core/errors';
import * as projects from '../db/repositories/projects';
import * as roleAssignments from '../db/repositories/roles';
import * as tokens from '../db/repositories/tokens';
import * as users from '../db/repositories/users';
import { hashPassword, verifyPassword } from './passwords';

import type { RoleName } from '../db/repositories/roles';
import type { Page, PageRequest } from '../db/types';

export type Project = projects.Project;
export type ProjectChanges = projects.ProjectChanges;
export type User = users.User;

export type Role = RoleName;
/** Every role there is (Stratus's fixed set). */
export const ROLES = roleAssignments.ROLES;

/** Who is calling, resolved from a bearer token. */
export interface AuthContext {
  tokenId: string;
  user: { id: string; name: string };
  project: { id: string; name: string };
  roles: Role[];
  expiresAt: Date;
  issuedAt: Date;
}

export const ADMIN_NAME = 'admin';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function hasRole(auth: AuthContext, ...wanted: Role[]): boolean {
  return auth.roles.some((r) => wanted.includes(r));
}

export function requireAdmin(auth: AuthContext): void {
  if (!hasRole(auth, 'admin')) throw new Forbidden('this call needs the admin role');
}

/**
 * How long a resolved token is answered from memory (the token lookup was one query on every
 * request). Any identity change made through this service (revoking a token, disabling or deleting
 * a user or project, a role assigned or revoked) empties the cache at once; one made through another
 * process takes effect there within this time.
 */
export const TOKEN_CACHE_MS = 1000;
/** At most this many tokens are remembered (the oldest is dropped first). */
const TOKEN_CACHE_SIZE = 10_000;

export interface IdentityServiceOptions {
  db: Knex;
  tokenTtlSeconds: number;
  now?: () => Date;
  /** See TOKEN_CACHE_MS; 0 reads the database on every request. */
  tokenCacheMs?: number;
}

export function createIdentityService({ db, tokenTtlSeconds, now = () => new Date(), tokenCacheMs = TOKEN_CACHE_MS }: IdentityServiceOptions) {
  async function findProject(ref: string) {
    return (UUID.test(ref) ? await projects.getById(db, ref) : undefined) ?? (await projects.getByName(db, ref));
  }

  /** Resolved tokens by hash, each until a monotonic time. */
  const resolved = new Map<string, { auth: AuthContext; until: number }>();
  /** Bumped by every identity change, so a lookup that raced with one is not remembered. */
  let generation = 0;
  /** After an identity change: forget every resolved token. */
  const changed = <T>(result: T): T => {
    generation += 1;
    resolved.clear();
    return result;
  };

  return {
    /**
     * Log in. Any mismatch (user, password, project, role) is the same 401, so names cannot be probed.
     * The user is named (`username`) or given by id (`userId`, Keystone's `user.id`); without a
     * `project` the token is scoped to the user's default project.
     */
    async issueToken(input: { username?: string; userId?: string; password: string; project?: string }) {
      const denied = new Unauthorized('wrong username, password or project');
      const byId = input.userId !== undefined && UUID.test(input.userId) ? await users.getById(db, input.userId) : null;
      const user = byId ? await users.getByName(db, byId.name) : input.username !== undefined ? await users.getByName(db, input.username) : null;
      // Verify even for an unknown user, so response time does not reveal which names exist.
      const ok = await verifyPassword(input.password, user?.passwordHash ?? DUMMY_HASH);
      if (!user || !ok || !user.enabled) throw denied;
      const projectRef = input.project ?? user.defaultProjectId;
      const project = projectRef ? await findProject(projectRef) : null;
      if (!project || !project.enabled) throw denied;
      const roles = (await roleAssignments.listForUserInProject(db, user.id, project.id)) as Role[];
      if (roles.length === 0) throw denied;

      const token = `st_${randomBytes(32).toString('base64url')}`;
      const expiresAt = new Date(now().getTime() + tokenTtlSeconds * 1000);
      const row = await tokens.insert(db, { tokenHash: sha256(token), userId: user.id, projectId: project.id, expiresAt });
      const auth: AuthContext = {
        tokenId: row.id,
        user: { id: user.id, name: user.name },
        project: { id: project.id, name: project.name },
        roles,
        expiresAt,
        issuedAt: row.createdAt,
      };
      return { token, auth };
    },

    /** Resolve a bearer token; expired, revoked, or belonging to a disabled user/project → 401. */
    async resolveToken(token: string): Promise<AuthContext> {
      const hash = sha256(token);
      const hit = resolved.get(hash);
      if (hit && hit.until > performance.now() && hit.auth.expiresAt > now()) return hit.auth;
      const seen = generation;
      const found = await tokens.findValidByHash(db, hash, now());
      if (!found) throw new Unauthorized('the token is invalid, expired or revoked');
      const roles = found.roles as Role[];
      if (roles.length === 0) throw new Unauthorized('the token no longer grants any role on its project');
      const auth: AuthContext = {
        tokenId: found.token.id,
        user: { id: found.user.id, name: found.user.name },
        project: { id: found.project.id, name: found.project.name },
        roles,
        expiresAt: found.token.expiresAt,
        issuedAt: found.token.createdAt,
      };
      if (tokenCacheMs > 0 && seen === generation) {
        resolved.delete(hash);
        if (resolved.size >= TOKEN_CACHE_SIZE) resolved.delete(resolved.keys().next().value!);
        resolved.set(hash, { auth, until: performance.now() + tokenCacheMs });
      }
      return auth;
    },

    async revokeToken(tokenId: string): Promise<void> {
      changed(await tokens.revoke(db, tokenId));
    },

    /**
     * First start: make project `admin` and user `admin` with the admin role. Uses `password` when
     * given, else generates one and returns it so the caller can print it once. Later starts change nothing.
     */
    async bootstrapAdmin(password: string | undefined): Promise<{ generatedPassword?: string }> {
      return db.transaction(async (trx) => {
        // One bootstrap at a time, even with several API processes starting together.
        await trx.raw('select pg_advisory_xact_lock(?)', [424242]);
        const existing = await users.getByName(trx, ADMIN_NAME);
        if (existing) return {};
        const generated = password ? undefined : randomBytes(12).toString('base64url');
        const project =
          (await projects.getByName(trx, ADMIN_NAME)) ??
          (await projects.create(trx, { name: ADMIN_NAME, description: 'Cloud administrators' }));
        const user = await users.create(trx, {
          name: ADMIN_NAME,
          passwordHash: await hashPassword(password ?? generated ?? ''),
          defaultProjectId: project.id,
        });
        await roleAssignments.assign(trx, { userId: user.id, projectId: project.id, role: 'admin' });
        return generated ? { generatedPassword: generated } : {};
      });
    },

    // --- projects ---------------------------------------------------------------------------
    listProjects(page: PageRequest): Promise<Page<Project>> {
      return projects.list(db, page);
    },
    createProject(input: projects.NewProject): Promise<Project> {
      return projects.create(db, input);
    },
    /** No one disables the project of their own token (they would lock themselves out). */
    updateProject(auth: AuthContext, id: string, changes: ProjectChanges): Promise<Project> {
      if (changes.enabled === false && id === auth.project.id) {
        throw new InvalidInput('you cannot disable the project your token is scoped to', [{ field: 'body.enabled', message: 'is the caller\'s project' }]);
      }
      return projects.update(db, id, changes).then(changed);
    },
    async getProject(auth: AuthContext, id: string) {
      const project = await projects.getById(db, id);
      // Non-admins see only their own project; others are "not found", not "forbidden".
      if (!project || (!hasRole(auth, 'admin') && project.id !== auth.project.id)) {
        throw new NotFound(`project ${id} not found`);
      }
      return project;
    },
    async deleteProject(id: string) {
      if ((await projects.getById(db, id))?.name === ADMIN_NAME) {
        throw new InvalidInput('the admin project cannot be deleted', [{ field: 'path.project_id', message: 'is the admin project' }]);
      }
      changed(await projects.delete(db, id));
    },

    // --- users ------------------------------------------------------------------------------
    listUsers(page: PageRequest): Promise<Page<User>> {
      return users.list(db, page);
    },
    async createUser(input: { name: string; password: string; enabled?: boolean; defaultProjectId?: string | null }) {
      await assertProjectExists(input.defaultProjectId, 'body.default_project_id');
      return users.create(db, {
        name: input.name,
        passwordHash: await hashPassword(input.password),
        enabled: input.enabled,
        defaultProjectId: input.defaultProjectId ?? null,
      });
    },
    async getUser(auth: AuthContext, id: string) {
      const user = await users.getById(db, id);
      if (!user || (!hasRole(auth, 'admin') && user.id !== auth.user.id)) throw new NotFound(`user ${id} not found`);
      return user;
    },
    /** Admins may change anything; a user may change only their own password. */
    async updateUser(
      auth: AuthContext,
      id: string,
      patch: { name?: string; password?: string; enabled?: boolean; defaultProjectId?: string | null },
    ) {
      const self = id === auth.user.id;
      if (self && patch.enabled === false) {
        throw new InvalidInput('you cannot disable yourself', [{ field: 'body.enabled', message: 'is the caller' }]);
      }
      if (!hasRole(auth, 'admin')) {
        if (!self) throw new NotFound(`user ${id} not found`);
        const others = Object.keys(patch).filter((k) => k !== 'password');
        if (others.length > 0) throw new Forbidden(`only an admin may change ${others.join(', ')}`);
      }
      await assertProjectExists(patch.defaultProjectId, 'body.default_project_id');
      const { password, ...rest } = patch;
      return changed(
        await users.update(db, id, {
          ...rest,
          ...(password !== undefined ? { passwordHash: await hashPassword(password) } : {}),
        }),
      );
    },
    async deleteUser(auth: AuthContext, id: string) {
      if (id === auth.user.id) {
        throw new InvalidInput('you cannot delete yourself', [{ field: 'path.user_id', message: 'is the caller' }]);
      }
      changed(await users.delete(db, id));
    },

    // --- role assignments -------------------------------------------------------------------
    listAssignments(filter: { userId?: string; projectId?: string }) {
      return roleAssignments.listAssignments(db, filter);
    },
    /** The projects where `userId` holds a role (Keystone's `GET /v3/auth/projects`). */
    async projectsOf(userId: string): Promise<Project[]> {
      const ids = [...new Set((await roleAssignments.listAssignments(db, { userId })).map((a) => a.projectId))];
      const found = await Promise.all(ids.map((id) => projects.getById(db, id)));
      return found.filter((p): p is Project => p !== null);
    },
    async assignRole(projectId: string, userId: string, role: Role) {
      await assertUserAndProject(userId, projectId);
      changed(await roleAssignments.assign(db, { userId, projectId, role }));
    },
    /** No admin revokes their own admin role on the project of their token (they would lock themselves out). */
    async revokeRole(projectId: string, userId: string, role: Role, auth?: AuthContext) {
      if (auth && role === 'admin' && userId === auth.user.id && projectId === auth.project.id) {
        throw new InvalidInput('you cannot revoke your own admin role on the project of your token', [{ field: 'path.role', message: 'is the caller\'s admin role' }]);
      }
      await assertUserAndProject(userId, projectId);
      changed(await roleAssignments.revoke(db, { userId, projectId, role }));
    },
  };

  async function assertProjectExists(projectId: string | null | undefined, field: string) {
    if (projectId && !(await projects.getById(db, projectId))) {
      throw new InvalidInput(`project ${projectId} does not exist`, [{ field, message: 'no such project' }]);
    }
  }
  async function assertUserAndProject(userId: string, projectId: string) {
    if (!(await users.getById(db, userId))) throw new NotFound(`user ${userId} not found`);
    if (!(await projects.getById(db, projectId))) throw new NotFound(`project ${projectId} not found`);
  }
}

export type IdentityService = ReturnType<typeof createIdentityService>;

/** A valid hash of a random password, verified against when the user does not exist (timing). */
const DUMMY_HASH =
  'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
