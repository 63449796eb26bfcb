/**
 * Convergence (issue 7): the ledger of leftovers, and what it takes to (re)start an operation's
 * workflow from its database row alone.
 *
 * - `leftovers`: one row per undo that failed (a disk on a host that was down, a release the database
 *   refused). `action` is what the reconciler runs to finish the job (an activity name, its host or
 *   none for a conductor activity, its arguments); it retries pending rows until one succeeds.
 * - `operations.workflow_type` / `operations.workflow_args`: a recorded operation whose workflow never
 *   started (the API crashed in between, Temporal was down) is started by the reconciler, or by a
 *   retry with the same Idempotency-Key, from these columns: the row is the commitment.
 */
import type { Knex } from 'knex';

const up_ = [
  `create table leftovers (
    id uuid primary key,
    operation_id uuid null,
    resource_type text not null,
    resource_id text not null,
    host text null,
    action jsonb not null,
    error text not null,
    attempts integer not null default 0,
    status text not null default 'pending' constraint leftovers_status_check check (status in ('pending', 'done')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    done_at timestamptz null
  )`,
  `create index leftovers_status_idx on leftovers (status, created_at)`,
  `alter table operations add column workflow_type text null`,
  `alter table operations add column workflow_args jsonb null`,
  `create index operations_status_idx on operations (status, created_at)`,
];

const down_ = [
  'drop index operations_status_idx',
  'alter table operations drop column workflow_args',
  'alter table operations drop column workflow_type',
  'drop table leftovers',
];

export async function up(knex: Knex): Promise<void> {
  for (const sql of up_) await knex.raw(sql);
}

export async function down(knex: Knex): Promise<void> {
  for (const sql of down_) await knex.raw(sql);
}
