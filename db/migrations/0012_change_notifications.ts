/**
 * Every committed change to what a server's view reads (servers, their ports, volumes, operations,
 * group membership, flavors) sends a NOTIFY on `stratus_changes`, after the statement, delivered
 * when its transaction commits (never for one rolled back). db/change-feed.ts listens: it is how the
 * API knows a response it rendered before is still what the database holds (api/response-cache.ts).
 * Statement-level triggers: one notification per statement, whatever the rows it touched
 * (PostgreSQL folds identical ones of a transaction into one).
 */
import type { Knex } from 'knex';

export const CHANGES_CHANNEL = 'stratus_changes';
export const TRACKED_TABLES = ['servers', 'ports', 'volumes', 'operations', 'server_group_members', 'flavors'] as const;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`create function stratus_notify_change() returns trigger language plpgsql as $$
    begin
      perform pg_notify('${CHANGES_CHANNEL}', '');
      return null;
    end $$`);
  for (const table of TRACKED_TABLES) {
    await knex.raw(`create trigger ${table}_notify_change after insert or update or delete or truncate on ${table}
      for each statement execute function stratus_notify_change()`);
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const table of TRACKED_TABLES) await knex.raw(`drop trigger if exists ${table}_notify_change on ${table}`);
  await knex.raw('drop function if exists stratus_notify_change()');
}
