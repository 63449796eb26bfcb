/**
 * Server batches: one row per batch request, and on each member server its batch and index. The
 * members are ordinary servers; (batch_id, batch_index) is unique, so a member is created at most
 * once whatever retries the batch workflow makes (a retried member re-runs its create on the same row).
 */
import type { Knex } from 'knex';

const up_ = [
  `create table server_batches (
    id uuid primary key,
    project_id uuid not null references projects(id) on delete cascade,
    user_id uuid references users(id) on delete set null,
    name text not null,
    name_pattern text not null,
    template jsonb not null,
    count integer not null constraint server_batches_count_check check (count between 1 and 10000),
    min_count integer not null constraint server_batches_min_count_check check (min_count between 0 and count),
    max_parallel integer not null constraint server_batches_max_parallel_check check (max_parallel between 1 and 1000),
    rollback_on_failure boolean not null default false,
    status text not null constraint server_batches_status_check
      check (status in ('running', 'succeeded', 'failed', 'cancelling', 'cancelled', 'deleting', 'deleted')),
    fault jsonb,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
  )`,
  `create index server_batches_project_created_idx on server_batches (project_id, created_at, id)`,
  `alter table servers add column batch_id uuid references server_batches(id) on delete set null`,
  `alter table servers add column batch_index integer`,
  `create unique index servers_batch_member_key on servers (batch_id, batch_index)`,
];

export async function up(knex: Knex): Promise<void> {
  for (const sql of up_) await knex.raw(sql);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists servers_batch_member_key');
  await knex.raw('alter table servers drop column if exists batch_index');
  await knex.raw('alter table servers drop column if exists batch_id');
  await knex.raw('drop table if exists server_batches');
}
