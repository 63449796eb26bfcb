/**
 * The one visibility rule of project-scoped resources: a caller sees its own project's resources,
 * an admin every project's; anything else does not exist for the caller (404, never 403, so ids of
 * other projects cannot be probed). Every component service reads and lists through these.
 */
import { NotFound, type FieldErrors } from '../core/errors';
import { hasRole, type AuthContext } from './identity';

/** May `auth` see a resource of `projectId`? */
export function canSee(auth: AuthContext, projectId: string): boolean {
  return projectId === auth.project.id || hasRole(auth, 'admin');
}

/** The list filter of the rule: admins list every project, others their own. */
export function listScope(auth: AuthContext): { projectId?: string } {
  return hasRole(auth, 'admin') ? {} : { projectId: auth.project.id };
}

/**
 * The list filter of the rule narrowed to the project a caller asked for (`?project_id=`): that
 * project when the caller may see it, null when it may not (then the list is empty).
 */
export function listScopeFor(auth: AuthContext, projectId: string | undefined): { projectId?: string } | null {
  const scope = listScope(auth);
  if (projectId === undefined) return scope;
  return scope.projectId === undefined || scope.projectId === projectId ? { projectId } : null;
}

/**
 * `row` when it exists, is not gone (`gone`) and `auth` may see it; else NotFound "<kind> <id> not
 * found" (naming `field` when the id came from a request field).
 */
export function visibleOr404<T extends { projectId: string }>(
  auth: AuthContext,
  row: T | null | undefined,
  what: { kind: string; id: string; field?: string; gone?: (row: T) => boolean },
): T {
  if (!row || what.gone?.(row) || !canSee(auth, row.projectId)) {
    const fields: FieldErrors = what.field ? [{ field: what.field, message: `no such ${what.kind}` }] : [];
    throw new NotFound(`${what.kind} ${what.id} not found`, fields);
  }
  return row;
}
