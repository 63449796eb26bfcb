/**
 * Compute (flavors, servers, host claims, meters), network (networks, subnets, ports), storage
 * (volumes) and the operations that track workflows on them. Same rules as 0001: plain SQL both
 * engines accept, one statement per call, constraint names spelled out for the repositories.
 * Depends on 0002 (images): servers.image_id and volumes.image_id reference images(id), set null
 * when the image is deleted.
 *
 * Concurrency lives in these constraints: ports_subnet_id_fixed_ip_key never lets one address go
 * out twice; ports_mac_key never two NICs with one MAC; host_claims_pkey one claim per server;
 * the status checks keep the state machines' vocabularies closed.
 *
 * servers.flavor_id is deliberately not a declared foreign key: a flavor may be deleted once only
 * DELETED servers use it, and those keep naming it (as Nova's instances keep their flavor).
 * servers.create and flavors.remove lock the flavor row the way a foreign key check would
 * (FOR KEY SHARE against FOR UPDATE), so a server cannot be created with a flavor being deleted.
 */
import type { Knex } from 'knex';

/** The flavors this migration seeds (fixed ids, so every installation agrees on them). */
export const SEEDED_FLAVORS = [
  { id: 'f1a70000-0000-4000-8000-000000000001', name: 'm1.tiny', vcpus: 1, ramMb: 128, diskGb: 1 },
  { id: 'f1a70000-0000-4000-8000-000000000002', name: 'm1.small', vcpus: 1, ramMb: 2048, diskGb: 20 },
  { id: 'f1a70000-0000-4000-8000-000000000003', name: 'm1.medium', vcpus: 2, ramMb: 4096, diskGb: 40 },
] as const;

const up_ = [
  `create table flavors (
    id uuid primary key,
    name text not null constraint flavors_name_key unique,
    vcpus integer not null constraint flavors_vcpus_check check (vcpus > 0),
    ram_mb integer not null constraint flavors_ram_mb_check check (ram_mb > 0),
    disk_gb integer not null constraint flavors_disk_gb_check check (disk_gb >= 0),
    is_public boolean not null default true,
    created_at timestamptz not null default now()
  )`,
  `insert into flavors (id, name, vcpus, ram_mb, disk_gb) values ${SEEDED_FLAVORS.map(
    (f) => `('${f.id}', '${f.name}', ${f.vcpus}, ${f.ramMb}, ${f.diskGb})`,
  ).join(', ')}`,

  `create table networks (
    id uuid primary key,
    project_id uuid not null constraint networks_project_id_fkey references projects (id) on delete cascade,
    name text not null,
    created_at timestamptz not null default now(),
    constraint networks_project_id_name_key unique (project_id, name)
  )`,

  `create table subnets (
    id uuid primary key,
    network_id uuid not null constraint subnets_network_id_fkey references networks (id) on delete cascade,
    project_id uuid not null constraint subnets_project_id_fkey references projects (id) on delete cascade,
    cidr cidr not null constraint subnets_cidr_check check (family(cidr) = 4),
    gateway_ip inet null,
    allocation_pools jsonb not null constraint subnets_allocation_pools_check check (jsonb_typeof(allocation_pools) = 'array'),
    dns_nameservers jsonb not null default '[]',
    created_at timestamptz not null default now()
  )`,
  `create index subnets_network_id_idx on subnets (network_id)`,

  `create table ports (
    id uuid primary key,
    project_id uuid not null constraint ports_project_id_fkey references projects (id),
    network_id uuid not null constraint ports_network_id_fkey references networks (id),
    subnet_id uuid not null constraint ports_subnet_id_fkey references subnets (id),
    mac text not null constraint ports_mac_key unique,
    fixed_ip inet not null constraint ports_fixed_ip_check check (family(fixed_ip) = 4 and masklen(fixed_ip) = 32),
    device_id uuid null,
    device_owner text null constraint ports_device_owner_check check (device_owner in ('compute')),
    created_by_server boolean not null default false,
    status text not null default 'DOWN' constraint ports_status_check check (status in ('DOWN', 'ACTIVE')),
    created_at timestamptz not null default now(),
    constraint ports_subnet_id_fixed_ip_key unique (subnet_id, fixed_ip)
  )`,
  `create index ports_network_id_idx on ports (network_id)`,
  `create index ports_project_id_idx on ports (project_id)`,
  `create index ports_device_id_idx on ports (device_id)`,

  `create table servers (
    id uuid primary key,
    project_id uuid not null constraint servers_project_id_fkey references projects (id),
    user_id uuid null constraint servers_user_id_fkey references users (id) on delete set null,
    name text not null,
    flavor_id uuid not null,
    image_id uuid null constraint servers_image_id_fkey references images (id) on delete set null,
    status text not null constraint servers_status_check check (status in ('BUILD', 'ACTIVE', 'SHUTOFF', 'ERROR', 'DELETED')),
    task_state text null,
    power_state text null,
    host text null,
    metadata jsonb not null default '{}',
    fault jsonb null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    deleted_at timestamptz null
  )`,
  `create index servers_project_id_created_at_idx on servers (project_id, created_at)`,
  `create index servers_flavor_id_idx on servers (flavor_id)`,
  `create index servers_image_id_idx on servers (image_id)`,
  `create index servers_user_id_idx on servers (user_id)`,

  `create table host_claims (
    server_id uuid primary key,
    host_name text not null constraint host_claims_host_name_fkey references hosts (name) on delete cascade,
    vcpus integer not null constraint host_claims_vcpus_check check (vcpus >= 0),
    ram_mb integer not null constraint host_claims_ram_mb_check check (ram_mb >= 0),
    disk_gb integer not null constraint host_claims_disk_gb_check check (disk_gb >= 0),
    created_at timestamptz not null default now()
  )`,
  `create index host_claims_host_name_idx on host_claims (host_name)`,

  `create table volumes (
    id uuid primary key,
    project_id uuid not null constraint volumes_project_id_fkey references projects (id),
    name text not null,
    size_gb integer not null constraint volumes_size_gb_check check (size_gb > 0),
    status text not null constraint volumes_status_check check (status in
      ('creating', 'available', 'reserved', 'attaching', 'in-use', 'detaching', 'deleting', 'error', 'deleted')),
    image_id uuid null constraint volumes_image_id_fkey references images (id) on delete set null,
    host text null,
    server_id uuid null,
    device text null,
    delete_on_termination boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
  )`,
  `create index volumes_project_id_created_at_idx on volumes (project_id, created_at)`,
  `create index volumes_server_id_idx on volumes (server_id)`,
  `create index volumes_image_id_idx on volumes (image_id)`,

  `create table operations (
    id uuid primary key,
    kind text not null,
    resource_type text not null,
    resource_id uuid not null,
    project_id uuid not null,
    workflow_id text not null,
    run_id text null,
    status text not null default 'running' constraint operations_status_check check (status in ('running', 'succeeded', 'failed')),
    error jsonb null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
  )`,
  `create index operations_resource_id_idx on operations (resource_id)`,

  `create table server_meters (
    server_id uuid primary key,
    workflow_id text not null,
    started_at timestamptz not null default now(),
    stopped_at timestamptz null
  )`,
];

const down_ = [
  'drop table server_meters',
  'drop table operations',
  'drop table volumes',
  'drop table host_claims',
  'drop table servers',
  'drop table ports',
  'drop table subnets',
  'drop table networks',
  'drop table flavors',
];

export async function up(knex: Knex): Promise<void> {
  for (const sql of up_) await knex.raw(sql);
}

export async function down(knex: Knex): Promise<void> {
  for (const sql of down_) await knex.raw(sql);
}
