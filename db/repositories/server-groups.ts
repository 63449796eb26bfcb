/**
 * Server groups (Nova's): a named set of a project's servers with a placement policy. Membership is
 * recorded when the server is created; the claim for a member locks the group row
 * (db/repositories/claims.ts), so the policy holds when members are created concurrently.
 */
import { InvalidInput } from '../../core/errors';
import { atDbEdge, insertedRow, missing } from '../errors';
import { isUuid, newId } from '../ids';
import type { Queryable } from '../types';

export type GroupPolicy = 'affinity' | 'anti-affinity' | 'soft-affinity' | 'soft-anti-affinity';

export interface ServerGroup {
  id: string;
  projectId: string;
  name: string;
  policy: GroupPolicy;
  createdAt: Date;
}

export interface Member {
  serverId: string;
  /** Where its claim is (null before scheduling or after it failed or was deleted). */
  host: string | null;
}

interface Row {
  id: string;
  project_id: string;
  name: string;
  policy: GroupPolicy;
  created_at: Date;
}

const COLUMNS = ['id', 'project_id', 'name', 'policy', 'created_at'];

function toGroup(r: Row): ServerGroup {
  return { id: r.id, projectId: r.project_id, name: r.name, policy: r.policy, createdAt: r.created_at };
}

export async function create(db: Queryable, input: { projectId: string; name: string; policy: GroupPolicy }): Promise<ServerGroup> {
  const rows = await atDbEdge<Row[]>(
    () => db('server_groups').insert({ id: newId(), project_id: input.projectId, name: input.name, policy: input.policy }).returning(COLUMNS),
    {
      server_groups_project_id_fkey: missing('project_id', `project '${input.projectId}' not found`),
      server_groups_policy_check: () => new InvalidInput(`'${input.policy}' is not a policy`, [{ field: 'body.policy', message: 'unknown policy' }]),
    },
  );
  return toGroup(insertedRow(rows));
}

export async function get(db: Queryable, id: string): Promise<ServerGroup | null> {
  if (!isUuid(id)) return null;
  const row = (await db('server_groups').select(COLUMNS).where({ id }).first()) as Row | undefined;
  return row ? toGroup(row) : null;
}

/** A project's groups (all of them, or every project's), oldest first. */
export async function list(db: Queryable, projectId?: string): Promise<ServerGroup[]> {
  const q = db('server_groups').select(COLUMNS).orderBy([{ column: 'created_at' }, { column: 'id' }]);
  if (projectId) q.where({ project_id: projectId });
  return ((await q) as Row[]).map(toGroup);
}

export async function remove(db: Queryable, id: string): Promise<boolean> {
  if (!isUuid(id)) return false;
  return (await db('server_groups').where({ id }).delete()) > 0;
}

/** Members of the given groups (servers not DELETED) with their claimed host, by group id. */
export async function members(db: Queryable, groupIds: readonly string[]): Promise<Record<string, Member[]>> {
  const out: Record<string, Member[]> = Object.fromEntries(groupIds.map((id) => [id, []]));
  if (groupIds.length === 0) return out;
  const rows = (await db('server_group_members as m')
    .leftJoin('host_claims as c', 'c.server_id', 'm.server_id')
    .whereIn('m.group_id', groupIds)
    .orderBy([{ column: 'm.created_at' }, { column: 'm.server_id' }])
    .select(['m.group_id', 'm.server_id', 'c.host_name'])) as Array<{ group_id: string; server_id: string; host_name: string | null }>;
  for (const r of rows) out[r.group_id]!.push({ serverId: r.server_id, host: r.host_name });
  return out;
}

export async function addMember(db: Queryable, groupId: string, serverId: string): Promise<void> {
  await db('server_group_members').insert({ group_id: groupId, server_id: serverId }).onConflict('server_id').ignore();
}

/** The server leaves its group (it was deleted). Idempotent. */
export async function removeMember(db: Queryable, serverId: string): Promise<void> {
  if (!isUuid(serverId)) return;
  await db('server_group_members').where({ server_id: serverId }).delete();
}

/** The group the server belongs to, or null. */
export async function groupOf(db: Queryable, serverId: string): Promise<ServerGroup | null> {
  if (!isUuid(serverId)) return null;
  const row = (await db('server_groups as g')
    .join('server_group_members as m', 'm.group_id', 'g.id')
    .where('m.server_id', serverId)
    .select(COLUMNS.map((c) => `g.${c}`))
    .first()) as Row | undefined;
  return row ? toGroup(row) : null;
}
