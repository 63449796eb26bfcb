/**
 * Idempotency keys: one row per (project, key) a client sent with a POST. The row pins the request
 * (a hash of method, path and body) and, once answered, the response, so a retry with the same key
 * gets the same answer and a different request with the same key is refused (422). The primary key
 * makes concurrent first attempts race in the database: one inserts, the others wait for its answer.
 */
import type { Knex } from 'knex';

const up_ = [
  `create table idempotency_keys (
    project_id uuid not null references projects(id) on delete cascade,
    key text not null,
    request_hash text not null,
    state text not null constraint idempotency_keys_state_check check (state in ('pending', 'done')),
    response_status integer,
    response_type text,
    response_body text,
    claimed_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    constraint idempotency_keys_pkey primary key (project_id, key)
  )`,
  `create index idempotency_keys_created_at_idx on idempotency_keys (created_at)`,
];

export async function up(knex: Knex): Promise<void> {
  for (const sql of up_) await knex.raw(sql);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table if exists idempotency_keys');
}
