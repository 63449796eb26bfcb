/**
 * Every migration, in order. Migrations are TypeScript modules imported here (not found by a
 * directory glob), so they run the same under ts-jest, tsx and a compiled build.
 *
 * To add one: write `NNNN_what.ts` exporting `up(knex)` and `down(knex)`, import it here and append
 * it to the list. Never rename or remove an entry once it has shipped: knex records names in
 * `knex_migrations` and refuses to run when a recorded migration is missing from this list.
 */
import type { Knex } from 'knex';
import * as m0001 from './0001_identity_and_hosts';
import * as m0002 from './0002_images';
import * as m0003 from './0003_compute_network_storage';
import * as m0004 from './0004_leftovers';
import * as m0005 from './0005_metering';
import * as m0006 from './0006_placement_and_quotas';
import * as m0007 from './0007_list_indexes_and_progress';
import * as m0008 from './0008_idempotency_keys';
import * as m0009 from './0009_server_batches';
import * as m0010 from './0010_openstack_fields';
import * as m0011 from './0011_meters_without_workflow';
import * as m0012 from './0012_change_notifications';

export interface NamedMigration {
  name: string;
  migration: Knex.Migration;
}

export const migrations: readonly NamedMigration[] = [
  { name: '0001_identity_and_hosts', migration: m0001 },
  { name: '0002_images', migration: m0002 },
  { name: '0003_compute_network_storage', migration: m0003 },
  { name: '0004_leftovers', migration: m0004 },
  { name: '0005_metering', migration: m0005 },
  { name: '0006_placement_and_quotas', migration: m0006 },
  { name: '0007_list_indexes_and_progress', migration: m0007 },
  { name: '0008_idempotency_keys', migration: m0008 },
  { name: '0009_server_batches', migration: m0009 },
  { name: '0010_openstack_fields', migration: m0010 },
  { name: '0011_meters_without_workflow', migration: m0011 },
  { name: '0012_change_notifications', migration: m0012 },
];
