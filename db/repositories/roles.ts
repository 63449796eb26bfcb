/** Role assignments: a user holds a role on a project. Roles themselves are seeded rows. */
import { atDbEdge, missing } from '../errors';
import { isUuid } from '../ids';
import type { Queryable } from '../types';
import { NotFound } from '../../core/errors';

/** The roles migration 0001 seeds. */
export const ROLES = ['admin', 'member', 'reader'] as const;
export type RoleName = (typeof ROLES)[number];

export interface RoleAssignment {
  userId: string;
  projectId: string;
  role: string;
  createdAt: Date;
}

interface RoleAssignmentRow {
  user_id: string;
  project_id: string;
  role: string;
  created_at: Date;
}

function toAssignment(row: RoleAssignmentRow): RoleAssignment {
  return { userId: row.user_id, projectId: row.project_id, role: row.role, createdAt: row.created_at };
}

export interface Assignment {
  userId: string;
  projectId: string;
  role: string;
}

/**
 * Gives `userId` the role on `projectId`. Idempotent: returns true when the assignment is new, false
 * when it already existed. Throws NotFound when the user, project or role does not exist.
 */
export async function assign(db: Queryable, a: Assignment): Promise<boolean> {
  if (!isUuid(a.userId)) throw new NotFound(`user '${a.userId}' not found`);
  if (!isUuid(a.projectId)) throw new NotFound(`project '${a.projectId}' not found`);
  const rows = await atDbEdge(
    () =>
      db('role_assignments')
        .insert({ user_id: a.userId, project_id: a.projectId, role: a.role })
        .onConflict(['user_id', 'project_id', 'role'])
        .ignore()
        .returning(['role']),
    {
      role_assignments_user_id_fkey: missing('userId', `user '${a.userId}' not found`),
      role_assignments_project_id_fkey: missing('projectId', `project '${a.projectId}' not found`),
      role_assignments_role_fkey: missing('role', `role '${a.role}' not found`),
    },
  );
  return rows.length > 0;
}

/** Removes the assignment; true when there was one. */
export async function revoke(db: Queryable, a: Assignment): Promise<boolean> {
  if (!isUuid(a.userId) || !isUuid(a.projectId)) return false;
  const count = await db('role_assignments').where({ user_id: a.userId, project_id: a.projectId, role: a.role }).delete();
  return count > 0;
}

/** Role names the user holds on the project, sorted. */
export async function listForUserInProject(db: Queryable, userId: string, projectId: string): Promise<string[]> {
  if (!isUuid(userId) || !isUuid(projectId)) return [];
  const rows = (await db('role_assignments')
    .select('role')
    .where({ user_id: userId, project_id: projectId })
    .orderBy('role')) as Array<{ role: string }>;
  return rows.map((r) => r.role);
}

/** Assignments filtered by user and/or project, ordered by user, project, role. */
export async function listAssignments(db: Queryable, filter: { userId?: string; projectId?: string } = {}): Promise<RoleAssignment[]> {
  if ((filter.userId !== undefined && !isUuid(filter.userId)) || (filter.projectId !== undefined && !isUuid(filter.projectId))) {
    return [];
  }
  const q = db('role_assignments').select(['user_id', 'project_id', 'role', 'created_at']);
  if (filter.userId !== undefined) q.where('user_id', filter.userId);
  if (filter.projectId !== undefined) q.where('project_id', filter.projectId);
  const rows = (await q.orderBy(['user_id', 'project_id', 'role'])) as RoleAssignmentRow[];
  return rows.map(toAssignment);
}

/** Every role name, sorted. */
export async function listRoles(db: Queryable): Promise<string[]> {
  const rows = (await db('roles').select('name').orderBy('name')) as Array<{ name: string }>;
  return rows.map((r) => r.name);
}
