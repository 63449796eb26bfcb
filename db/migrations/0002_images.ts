/**
 * Images (Glance's catalog). The bytes live in an image store (images/store.ts), keyed by image id;
 * this table holds what is known about them. Plain SQL that PostgreSQL and PGlite both accept, one
 * statement per call; constraint names spelled out for db/errors.ts.
 *
 * status: queued (no bytes yet) → saving (an upload is streaming) → active (bytes stored, size and
 * checksum known); killed and deleted are kept for Glance's vocabulary and for future use.
 */
import type { Knex } from 'knex';

const up_ = [
  `create table images (
    id uuid primary key,
    project_id uuid not null constraint images_project_id_fkey references projects (id) on delete cascade,
    name text not null,
    status text not null default 'queued'
      constraint images_status_check check (status in ('queued', 'saving', 'active', 'killed', 'deleted')),
    disk_format text not null constraint images_disk_format_check check (disk_format in ('raw', 'qcow2')),
    min_disk_gb integer not null default 0 constraint images_min_disk_gb_check check (min_disk_gb >= 0),
    min_ram_mb integer not null default 0 constraint images_min_ram_mb_check check (min_ram_mb >= 0),
    visibility text not null default 'private' constraint images_visibility_check check (visibility in ('private', 'public')),
    protected boolean not null default false,
    properties jsonb not null default '{}',
    size_bytes bigint null constraint images_size_bytes_check check (size_bytes >= 0),
    checksum_sha256 text null constraint images_checksum_sha256_check check (checksum_sha256 ~ '^[0-9a-f]{64}$'),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint images_active_has_bytes_check check (status <> 'active' or (size_bytes is not null and checksum_sha256 is not null))
  )`,
  `create index images_project_id_created_at_idx on images (project_id, created_at, id)`,
  `create index images_public_created_at_idx on images (created_at, id) where visibility = 'public'`,
];

const down_ = ['drop table images'];

export async function up(knex: Knex): Promise<void> {
  for (const sql of up_) await knex.raw(sql);
}

export async function down(knex: Knex): Promise<void> {
  for (const sql of down_) await knex.raw(sql);
}
