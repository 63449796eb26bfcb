/**
 * Reads that stay fast with thousands of rows:
 * - every list is read by keyset pagination (`ORDER BY created_at, id` after a cursor, filtered by
 *   project and by "not deleted"), so each gets an index whose columns are its filter then its order
 *   (partial where the list leaves deleted rows out), and a page is one index range scan;
 * - a page's relations are read with `WHERE x IN (…)` (ports by device, subnets by network, the
 *   latest operation of each resource), so those get (x, created_at, id) indexes, which replace the
 *   single-column ones they extend;
 * - operations.progress holds the step progress the workflow writes at each step it marks, so reads
 *   of a server or operation being built are a row, not a live workflow query.
 */
import type { Knex } from 'knex';

const up_ = [
  `alter table operations add column progress jsonb null`,

  `create index servers_live_project_order_idx on servers (project_id, created_at, id) where status <> 'DELETED'`,
  `create index servers_live_order_idx on servers (created_at, id) where status <> 'DELETED'`,
  `create index volumes_live_project_order_idx on volumes (project_id, created_at, id) where status <> 'deleted'`,
  `create index volumes_live_order_idx on volumes (created_at, id) where status <> 'deleted'`,
  `create index networks_project_order_idx on networks (project_id, created_at, id)`,
  `create index networks_order_idx on networks (created_at, id)`,
  `create index subnets_project_order_idx on subnets (project_id, created_at, id)`,
  `create index subnets_network_order_idx on subnets (network_id, created_at, id)`,
  `drop index subnets_network_id_idx`,
  `create index ports_project_order_idx on ports (project_id, created_at, id)`,
  `create index ports_device_order_idx on ports (device_id, created_at, id)`,
  `drop index ports_device_id_idx`,
  `create index ports_network_order_idx on ports (network_id, created_at, id)`,
  `drop index ports_network_id_idx`,
  `create index operations_resource_order_idx on operations (resource_id, created_at, id)`,
  `drop index operations_resource_id_idx`,
];

const down_ = [
  `create index operations_resource_id_idx on operations (resource_id)`,
  `drop index operations_resource_order_idx`,
  `create index ports_network_id_idx on ports (network_id)`,
  `drop index ports_network_order_idx`,
  `create index ports_device_id_idx on ports (device_id)`,
  `drop index ports_device_order_idx`,
  `drop index ports_project_order_idx`,
  `create index subnets_network_id_idx on subnets (network_id)`,
  `drop index subnets_network_order_idx`,
  `drop index subnets_project_order_idx`,
  `drop index networks_order_idx`,
  `drop index networks_project_order_idx`,
  `drop index volumes_live_order_idx`,
  `drop index volumes_live_project_order_idx`,
  `drop index servers_live_order_idx`,
  `drop index servers_live_project_order_idx`,
  `alter table operations drop column progress`,
];

export async function up(knex: Knex): Promise<void> {
  for (const sql of up_) await knex.raw(sql);
}

export async function down(knex: Knex): Promise<void> {
  for (const sql of down_) await knex.raw(sql);
}
