/**
 * What a server create request holds beyond the server row (issue 11), in three calls a create route
 * makes: `checkPlacementRequest` before anything is written (400 naming the field), `holdServerRequest`
 * inside the transaction that creates the server row (quota reserved first, then group membership),
 * and `releaseServerRequest` when the workflow could not start. Kept apart from the router so the
 * router stays a thin caller.
 */
import type { Knex } from 'knex';
import { InvalidInput } from '../core/errors';
import * as hosts from '../db/repositories/hosts';
import * as quotas from '../db/repositories/quotas';
import * as serverGroups from '../db/repositories/server-groups';
import type { Queryable } from '../db/types';
import type { AuthContext } from './identity';
import { serverQuotaAmounts, type ServerQuotaPlan } from './quotas';

export interface PlacementRequest {
  availabilityZone: string | null;
  group: serverGroups.ServerGroup | null;
}

/** A request's availability zone must be one some host is in (400 naming the field otherwise). */
export async function assertKnownZone(db: Queryable, zone: string | undefined, field: string): Promise<void> {
  if (zone === undefined) return;
  if (!(await hosts.zoneExists(db, zone))) {
    throw new InvalidInput(`no host is in availability zone ${zone}`, [{ field, message: 'unknown availability zone' }]);
  }
}

/** Checks `availability_zone` and `group_id` of a create request (the group must be the caller's project's). */
export async function checkPlacementRequest(
  db: Queryable,
  auth: AuthContext,
  body: { availability_zone?: string; group_id?: string },
): Promise<PlacementRequest> {
  await assertKnownZone(db, body.availability_zone, 'body.availability_zone');
  const group = body.group_id ? await serverGroups.get(db, body.group_id) : null;
  if (body.group_id && group?.projectId !== auth.project.id) {
    throw new InvalidInput(`server group ${body.group_id} does not exist`, [{ field: 'body.group_id', message: 'no such server group' }]);
  }
  return { availabilityZone: body.availability_zone ?? null, group };
}

/**
 * In the transaction that creates the server: reserves its quota (locks the project row; over quota
 * → QuotaExceeded, a 403 naming the resource, and the transaction rolls back) and joins its group.
 */
export async function holdServerRequest(
  trx: Knex.Transaction,
  req: { serverId: string; projectId: string; plan: ServerQuotaPlan; placement: PlacementRequest; quotaDefaults: quotas.QuotaLimits },
): Promise<void> {
  await quotas.reserve(trx, { projectId: req.projectId, ownerId: req.serverId, amounts: serverQuotaAmounts(req.plan), defaults: req.quotaDefaults });
  if (req.placement.group) await serverGroups.addMember(trx, req.placement.group.id, req.serverId);
}

/** The create never started: give the quota back and leave the group. Idempotent. */
export async function releaseServerRequest(db: Queryable, serverId: string): Promise<void> {
  await quotas.release(db, serverId);
  await serverGroups.removeMember(db, serverId);
}
