/**
 * What the OpenStack-compatible surface shows that `/v1` did not keep: Glance's image tags, its
 * `os_hidden` flag and the md5 `checksum` of the bytes (besides sha256); names on subnets and ports
 * (Neutron finds them by name). Defaults keep every existing row and `/v1` request valid.
 */
import type { Knex } from 'knex';

const up_ = [
  `alter table images add column tags jsonb not null default '[]'
     constraint images_tags_check check (jsonb_typeof(tags) = 'array')`,
  `alter table images add column os_hidden boolean not null default false`,
  `alter table images add column checksum_md5 text null
     constraint images_checksum_md5_check check (checksum_md5 ~ '^[0-9a-f]{32}$')`,
  `alter table subnets add column name text not null default ''`,
  `alter table ports add column name text not null default ''`,
];

const down_ = [
  'alter table ports drop column if exists name',
  'alter table subnets drop column if exists name',
  'alter table images drop column if exists checksum_md5',
  'alter table images drop column if exists os_hidden',
  'alter table images drop column if exists tags',
];

export async function up(knex: Knex): Promise<void> {
  for (const sql of up_) await knex.raw(sql);
}

export async function down(knex: Knex): Promise<void> {
  for (const sql of down_) await knex.raw(sql);
}
