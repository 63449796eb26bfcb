/**
 * Placement across many hosts and project quotas (issue 11).
 *
 * hosts: an admin switch (enabled), an availability zone, per-host allocation ratios (null → the
 * conductor's configured defaults) and the time of the last build that failed there (the scheduler
 * weighs recently failing hosts down).
 * servers / volumes: the availability zone asked for; servers also keep the scheduler's decision
 * (placement: host, alternates, weights) for admins.
 * server_groups + server_group_members: Nova's server groups. A claim for a member locks the group row,
 * so concurrent members of one group are placed one after another and the policy holds.
 * project_quotas: per-project limits that override the configured defaults.
 * quota_usages: what each resource owner (a server, a volume) holds of its project's quota, reserved
 * then committed; reservations lock the project row, so concurrent reservations never exceed a limit.
 */
import type { Knex } from 'knex';

const GROUP_POLICIES = ['affinity', 'anti-affinity', 'soft-affinity', 'soft-anti-affinity'] as const;
const QUOTA_RESOURCES = ['servers', 'vcpus', 'ram_mb', 'volumes', 'volume_gb', 'ports'] as const;

const list = (values: readonly string[]) => values.map((v) => `'${v}'`).join(', ');

const up_ = [
  `alter table hosts add column enabled boolean not null default true`,
  `alter table hosts add column availability_zone text not null default 'nova'`,
  `alter table hosts add column cpu_allocation_ratio double precision null constraint hosts_cpu_allocation_ratio_check check (cpu_allocation_ratio > 0)`,
  `alter table hosts add column ram_allocation_ratio double precision null constraint hosts_ram_allocation_ratio_check check (ram_allocation_ratio > 0)`,
  `alter table hosts add column disk_allocation_ratio double precision null constraint hosts_disk_allocation_ratio_check check (disk_allocation_ratio > 0)`,
  `alter table hosts add column last_build_failure_at timestamptz null`,

  `alter table servers add column availability_zone text null`,
  `alter table servers add column placement jsonb null`,
  `alter table volumes add column availability_zone text null`,

  `create table server_groups (
    id uuid primary key,
    project_id uuid not null constraint server_groups_project_id_fkey references projects (id) on delete cascade,
    name text not null,
    policy text not null constraint server_groups_policy_check check (policy in (${list(GROUP_POLICIES)})),
    created_at timestamptz not null default now()
  )`,
  `create index server_groups_project_id_idx on server_groups (project_id)`,
  `create table server_group_members (
    server_id uuid primary key,
    group_id uuid not null constraint server_group_members_group_id_fkey references server_groups (id) on delete cascade,
    created_at timestamptz not null default now()
  )`,
  `create index server_group_members_group_id_idx on server_group_members (group_id)`,

  `create table project_quotas (
    project_id uuid not null constraint project_quotas_project_id_fkey references projects (id) on delete cascade,
    resource text not null constraint project_quotas_resource_check check (resource in (${list(QUOTA_RESOURCES)})),
    hard_limit integer not null constraint project_quotas_hard_limit_check check (hard_limit >= -1),
    constraint project_quotas_pkey primary key (project_id, resource)
  )`,
  `create table quota_usages (
    owner_id uuid not null,
    resource text not null constraint quota_usages_resource_check check (resource in (${list(QUOTA_RESOURCES)})),
    project_id uuid not null constraint quota_usages_project_id_fkey references projects (id) on delete cascade,
    amount integer not null constraint quota_usages_amount_check check (amount >= 0),
    state text not null constraint quota_usages_state_check check (state in ('reserved', 'committed')),
    created_at timestamptz not null default now(),
    constraint quota_usages_pkey primary key (owner_id, resource)
  )`,
  `create index quota_usages_project_id_idx on quota_usages (project_id)`,
];

const down_ = [
  'drop table quota_usages',
  'drop table project_quotas',
  'drop table server_group_members',
  'drop table server_groups',
  'alter table volumes drop column availability_zone',
  'alter table servers drop column placement',
  'alter table servers drop column availability_zone',
  'alter table hosts drop column last_build_failure_at',
  'alter table hosts drop column disk_allocation_ratio',
  'alter table hosts drop column ram_allocation_ratio',
  'alter table hosts drop column cpu_allocation_ratio',
  'alter table hosts drop column availability_zone',
  'alter table hosts drop column enabled',
];

export async function up(knex: Knex): Promise<void> {
  for (const sql of up_) await knex.raw(sql);
}

export async function down(knex: Knex): Promise<void> {
  for (const sql of down_) await knex.raw(sql);
}
