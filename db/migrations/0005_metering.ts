/**
 * Metering (Ceilometer): what each server's meter records, and the prices of usage.
 *
 * - server_meters gains the allocation it meters, copied when metering starts (the flavor may be
 *   deleted later, the host claim is released at delete): project, host, domain, vCPUs, RAM, root
 *   disk, and the sampling interval.
 * - meter_samples: one row per server and interval index (`seq`), so a retried activity or a replayed
 *   workflow never writes an interval twice (primary key). `status` is 'ok' (a reading), 'missed'
 *   (the host did not answer in time: a gap, no numbers) or 'final' (taken when metering stopped).
 *   Counters are cumulative as libvirt reports them; `*_delta` columns hold the increase since the
 *   server's previous reading (computed when the row is written), so usage is a plain sum.
 * - rates: the price of one unit of usage from `effective_from` until `effective_to` (null: still in
 *   force). A new rate for a unit and currency ends the one in force; the database refuses overlaps.
 */
import type { Knex } from 'knex';

const up_ = [
  `alter table server_meters add column project_id uuid null`,
  `alter table server_meters add column host text null`,
  `alter table server_meters add column domain_name text null`,
  `alter table server_meters add column vcpus integer null`,
  `alter table server_meters add column ram_mb integer null`,
  `alter table server_meters add column disk_gb integer null`,
  `alter table server_meters add column interval_ms integer null`,
  `create index server_meters_project_id_idx on server_meters (project_id, started_at)`,

  `create table meter_samples (
    server_id uuid not null,
    seq integer not null constraint meter_samples_seq_check check (seq >= 0),
    status text not null constraint meter_samples_status_check check (status in ('ok', 'missed', 'final')),
    sampled_at timestamptz not null,
    power_state text null,
    cpu_time_ns bigint null,
    memory_kib bigint null,
    block_read_bytes bigint null,
    block_write_bytes bigint null,
    net_rx_bytes bigint null,
    net_tx_bytes bigint null,
    cpu_delta_ns bigint not null default 0,
    block_read_delta bigint not null default 0,
    block_write_delta bigint not null default 0,
    net_rx_delta bigint not null default 0,
    net_tx_delta bigint not null default 0,
    created_at timestamptz not null default now(),
    constraint meter_samples_pkey primary key (server_id, seq)
  )`,
  `create index meter_samples_server_id_sampled_at_idx on meter_samples (server_id, sampled_at)`,

  `create table rates (
    id uuid primary key,
    unit text not null constraint rates_unit_check check (unit in
      ('vcpu_hour', 'ram_gb_hour', 'disk_gb_hour', 'volume_gb_hour', 'cpu_second', 'io_gb')),
    currency text not null constraint rates_currency_check check (currency ~ '^[A-Z]{3}$'),
    price numeric(30, 9) not null constraint rates_price_check check (price >= 0),
    effective_from timestamptz not null,
    effective_to timestamptz null,
    created_at timestamptz not null default now(),
    constraint rates_period_check check (effective_to is null or effective_to > effective_from)
  )`,
  `create index rates_unit_currency_idx on rates (unit, currency, effective_from)`,
];

const down_ = [
  'drop table rates',
  'drop table meter_samples',
  'drop index server_meters_project_id_idx',
  ...['interval_ms', 'disk_gb', 'ram_mb', 'vcpus', 'domain_name', 'host', 'project_id'].map((c) => `alter table server_meters drop column ${c}`),
];

export async function up(knex: Knex): Promise<void> {
  for (const sql of up_) await knex.raw(sql);
}

export async function down(knex: Knex): Promise<void> {
  for (const sql of down_) await knex.raw(sql);
}
