/**
 * Nova's server groups: a policy (affinity, anti-affinity, soft variants) that places the servers
 * created with the group's id. Project-scoped by the one visibility rule; a group with members
 * cannot be deleted.
 */
import type { Knex } from 'knex';
import { Conflict } from '../core/errors';
import * as serverGroups from '../db/repositories/server-groups';
import type { AuthContext } from './identity';
import { listScope, visibleOr404 } from './visibility';

export type ServerGroup = serverGroups.ServerGroup;
export type GroupPolicy = serverGroups.GroupPolicy;
export type Member = serverGroups.Member;

/** A group with its members. */
export interface GroupDetails {
  group: ServerGroup;
  members: Member[];
}

export function createServerGroupService(db: Knex) {
  async function visibleGroup(auth: AuthContext, id: string): Promise<ServerGroup> {
    return visibleOr404(auth, await serverGroups.get(db, id), { kind: 'server group', id });
  }
  async function membersOf(group: ServerGroup): Promise<Member[]> {
    return (await serverGroups.members(db, [group.id]))[group.id] ?? [];
  }

  return {
    /** The groups the caller sees, with their members (one query for all of them). */
    async list(auth: AuthContext): Promise<GroupDetails[]> {
      const groups = await serverGroups.list(db, listScope(auth).projectId);
      const members = await serverGroups.members(db, groups.map((g) => g.id));
      return groups.map((group) => ({ group, members: members[group.id] ?? [] }));
    },
    create(auth: AuthContext, input: { name: string; policy: GroupPolicy }): Promise<ServerGroup> {
      return serverGroups.create(db, { projectId: auth.project.id, name: input.name, policy: input.policy });
    },
    async show(auth: AuthContext, id: string): Promise<GroupDetails> {
      const group = await visibleGroup(auth, id);
      return { group, members: await membersOf(group) };
    },
    /** Deletes an empty group (Conflict while it has members). */
    async remove(auth: AuthContext, id: string): Promise<void> {
      const group = await visibleGroup(auth, id);
      const members = await membersOf(group);
      if (members.length > 0) throw new Conflict(`server group ${group.id} has ${members.length} member(s): delete them first`);
      await serverGroups.remove(db, group.id);
    },
  };
}
