/**
 * A meter no longer has a workflow of its own: the host's sampler takes its samples and the delete
 * flow writes its final one. Meters started before keep their `meterServer` workflow's id (it still
 * waits for `stop`); new ones have none.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('alter table server_meters alter column workflow_id drop not null');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`update server_meters set workflow_id = 'meter:' || server_id where workflow_id is null`);
  await knex.raw('alter table server_meters alter column workflow_id set not null');
}
