/**
 * Server meters (Ceilometer): since when a server is metered, what allocation it meters, and its
 * samples (one per interval index, written once). `workflowId` names the meter's own `meterServer`
 * workflow on meters started before migration 0011; newer meters have none (the host's sampler
 * takes their samples, the delete flow writes the final one).
 */
import { InvalidInput } from '../../core/errors';
import { insertedRow } from '../errors';
import { isUuid } from '../ids';
import type { Knex } from 'knex';
import type { Queryable } from '../types';

export interface ServerMeter {
  serverId: string;
  workflowId: string | null;
  startedAt: Date;
  stoppedAt: Date | null;
}

/** The allocation a meter was started with (null on meters started before migration 0005). */
export interface MeterAllocation {
  projectId: string;
  host: string;
  domainName: string;
  vcpus: number;
  ramMb: number;
  diskGb: number;
  intervalMs: number;
}

interface ServerMeterRow {
  server_id: string;
  workflow_id: string | null;
  started_at: Date;
  stopped_at: Date | null;
}

const COLUMNS = ['server_id', 'workflow_id', 'started_at', 'stopped_at'];

function toMeter(row: ServerMeterRow): ServerMeter {
  return { serverId: row.server_id, workflowId: row.workflow_id, startedAt: row.started_at, stoppedAt: row.stopped_at };
}

/**
 * Records that metering started. Idempotent: when the server already has a meter, returns it
 * unchanged (same workflow id, start time and allocation, stopped or not).
 */
export async function start(
  db: Queryable,
  input: { serverId: string; workflowId?: string | null; allocation?: MeterAllocation },
): Promise<ServerMeter & { allocation: MeterAllocation | null }> {
  if (!isUuid(input.serverId)) throw new InvalidInput(`'${input.serverId}' is not a server id`, [{ field: 'server_id', message: 'not a uuid' }]);
  const a = input.allocation;
  const rows = (await db('server_meters')
    .insert({
      server_id: input.serverId,
      workflow_id: input.workflowId ?? null,
      ...(a
        ? { project_id: a.projectId, host: a.host, domain_name: a.domainName, vcpus: a.vcpus, ram_mb: a.ramMb, disk_gb: a.diskGb, interval_ms: a.intervalMs }
        : {}),
    })
    .onConflict('server_id')
    .ignore()
    .returning(COLUMNS)) as ServerMeterRow[];
  if (rows.length > 0) return { ...toMeter(insertedRow(rows)), allocation: a ?? null };
  const recorded = await allocation(db, input.serverId);
  if (recorded) return { ...recorded, allocation: recorded };
  const existing = await get(db, input.serverId); // a meter started before allocations were recorded
  if (!existing) throw new Error(`meter of server '${input.serverId}' vanished while starting`);
  return { ...existing, allocation: null };
}

/** Records that metering stopped (the first stop time is kept). Returns the meter, or null when the server has none. */
export async function stop(db: Queryable, serverId: string): Promise<ServerMeter | null> {
  if (!isUuid(serverId)) return null;
  const [row] = (await db('server_meters')
    .where({ server_id: serverId })
    .update({ stopped_at: db.raw('coalesce(stopped_at, now())') })
    .returning(COLUMNS)) as ServerMeterRow[];
  return row ? toMeter(row) : null;
}

export async function get(db: Queryable, serverId: string): Promise<ServerMeter | null> {
  if (!isUuid(serverId)) return null;
  const row = (await db('server_meters').select(COLUMNS).where({ server_id: serverId }).first()) as ServerMeterRow | undefined;
  return row ? toMeter(row) : null;
}

/** The allocation the meter of a server records, or null (no meter, or one from before 0005). */
export async function allocation(db: Queryable, serverId: string): Promise<(MeterAllocation & ServerMeter) | null> {
  if (!isUuid(serverId)) return null;
  const row = (await db('server_meters')
    .select([...COLUMNS, 'project_id', 'host', 'domain_name', 'vcpus', 'ram_mb', 'disk_gb', 'interval_ms'])
    .where({ server_id: serverId })
    .whereNotNull('vcpus')
    .first()) as (ServerMeterRow & AllocationRow) | undefined;
  return row ? { ...toMeter(row), ...toAllocation(row) } : null;
}

interface AllocationRow {
  project_id: string;
  host: string;
  domain_name: string;
  vcpus: number;
  ram_mb: number;
  disk_gb: number;
  interval_ms: number;
}

function toAllocation(row: AllocationRow): MeterAllocation {
  return {
    projectId: row.project_id,
    host: row.host,
    domainName: row.domain_name,
    vcpus: row.vcpus,
    ramMb: row.ram_mb,
    diskGb: row.disk_gb,
    intervalMs: row.interval_ms,
  };
}

// ---------------------------------------------------------------- samples

export type SampleStatus = 'ok' | 'missed' | 'final';

/** Cumulative counters as the hypervisor reported them (null: not reported). */
export interface SampleCounters {
  powerState: string | null;
  cpuTimeNs: number | null;
  memoryKiB: number | null;
  blockReadBytes: number | null;
  blockWriteBytes: number | null;
  netRxBytes: number | null;
  netTxBytes: number | null;
}

export interface NewSample {
  seq: number;
  status: SampleStatus;
  sampledAt: Date;
  /** Absent for a missed interval: a gap is never filled with invented numbers. */
  counters?: SampleCounters | null;
}

export interface Sample extends NewSample {
  serverId: string;
  /** Increase of each counter since the server's previous reading (0 for the first one). */
  deltas: { cpuNs: bigint; blockReadBytes: bigint; blockWriteBytes: bigint; netRxBytes: bigint; netTxBytes: bigint };
}

const COUNTERS = [
  ['cpu_time_ns', 'cpu_delta_ns', 'cpuTimeNs'],
  ['block_read_bytes', 'block_read_delta', 'blockReadBytes'],
  ['block_write_bytes', 'block_write_delta', 'blockWriteBytes'],
  ['net_rx_bytes', 'net_rx_delta', 'netRxBytes'],
  ['net_tx_bytes', 'net_tx_delta', 'netTxBytes'],
] as const;

type SampleRow = Record<string, unknown> & { server_id: string; seq: number; status: SampleStatus; sampled_at: Date; power_state: string | null };

const big = (v: unknown): bigint | null => (v === null || v === undefined ? null : BigInt(typeof v === 'number' ? Math.round(v) : String(v)));
const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/**
 * How much a cumulative counter grew: the difference with the previous reading, or the reading
 * itself when it went down (the guest was restarted and its counter began again), 0 without a
 * previous reading (the first reading is the baseline).
 */
export function counterDelta(current: bigint | null, previous: bigint | null): bigint {
  if (current === null || previous === null) return 0n;
  return current >= previous ? current - previous : current;
}

/**
 * Writes samples of one server, in seq order, each at most once: a seq already written is left as it
 * is (a retried activity or a replayed workflow changes nothing). Returns how many rows were new.
 */
export async function recordSamples(db: Knex, serverId: string, samples: readonly NewSample[]): Promise<number> {
  if (!isUuid(serverId)) throw new InvalidInput(`'${serverId}' is not a server id`, [{ field: 'server_id', message: 'not a uuid' }]);
  const sorted = [...samples].sort((a, b) => a.seq - b.seq);
  return db.transaction(async (trx) => {
    let written = 0;
    for (const s of sorted) {
      const previous = (await trx('meter_samples')
        .select(COUNTERS.map(([col]) => col))
        .where({ server_id: serverId })
        .where('seq', '<', s.seq)
        .whereNotNull('cpu_time_ns')
        .orderBy('seq', 'desc')
        .first()) as Record<string, unknown> | undefined;
      const row = sampleRow(serverId, s, previous);
      const inserted = (await trx('meter_samples').insert(row).onConflict(['server_id', 'seq']).ignore().returning('seq')) as unknown[];
      written += inserted.length;
    }
    return written;
  });
}

/** The row of a sample, its deltas taken against `previous` (the server's latest earlier reading). */
function sampleRow(serverId: string, s: NewSample, previous: Record<string, unknown> | undefined): Record<string, unknown> {
  const c = s.counters ?? null;
  const row: Record<string, unknown> = {
    server_id: serverId,
    seq: s.seq,
    status: s.status,
    sampled_at: s.sampledAt,
    power_state: c?.powerState ?? null,
    memory_kib: c ? big(c.memoryKiB)?.toString() ?? null : null,
  };
  for (const [col, deltaCol, key] of COUNTERS) {
    const current = c ? big(c[key]) : null;
    row[col] = current?.toString() ?? null;
    row[deltaCol] = counterDelta(current, previous ? big(previous[col]) : null).toString();
  }
  return row;
}

/** A meter a host's sampler serves: started, not stopped, with that interval. */
export interface ActiveMeter {
  serverId: string;
  domainName: string;
  /** When interval index 0 is due: the first multiple of the interval at or after metering started. */
  originMs: number;
  intervalMs: number;
}

/** `domainNames`: only the meters of these domains (a page of a host's tick). */
export async function activeOnHost(db: Queryable, host: string, intervalMs: number, domainNames?: readonly string[]): Promise<ActiveMeter[]> {
  const q = db('server_meters')
    .select('server_id', 'domain_name', 'started_at', 'interval_ms')
    .where({ host, interval_ms: intervalMs })
    .whereNull('stopped_at')
    .whereNotNull('vcpus')
    .orderBy('server_id');
  if (domainNames) q.whereIn('domain_name', domainNames);
  const rows = (await q) as Array<{ server_id: string; domain_name: string; started_at: Date; interval_ms: number }>;
  return rows.map((r) => ({
    serverId: r.server_id,
    domainName: r.domain_name,
    originMs: Math.ceil(r.started_at.getTime() / r.interval_ms) * r.interval_ms,
    intervalMs: r.interval_ms,
  }));
}

/** At most this many missed intervals are written for one server at once (after a long outage). */
const MAX_GAP_ROWS = 10_000;

/**
 * One tick of a host's sampler: for each meter, the sample of interval index `(tickMs - origin) /
 * interval` (ok with its reading, or missed when the host gave none for its domain) and a missed
 * sample for each index skipped since the meter's last one. Each index is written once (a retry
 * changes nothing); deltas are taken against each server's latest reading, all in a few statements
 * whatever the number of meters. Returns how many rows were new, by status.
 */
export async function recordTick(
  db: Knex,
  tickMs: number,
  entries: ReadonlyArray<{ meter: ActiveMeter; counters: SampleCounters | null }>,
): Promise<Record<SampleStatus, number>> {
  const written: Record<SampleStatus, number> = { ok: 0, missed: 0, final: 0 };
  const due = entries.filter((e) => tickMs >= e.meter.originMs);
  if (due.length === 0) return written;
  const ids = due.map((e) => e.meter.serverId);
  return db.transaction(async (trx) => {
    const last = new Map(
      ((await trx('meter_samples').select('server_id').max({ seq: 'seq' }).whereIn('server_id', ids).groupBy('server_id')) as Array<{ server_id: string; seq: number }>).map(
        (r) => [r.server_id, Number(r.seq)],
      ),
    );
    const previous = new Map(
      (
        (await trx('meter_samples')
          .distinctOn('server_id')
          .select(['server_id', ...COUNTERS.map(([col]) => col)])
          .whereIn('server_id', due.filter((e) => e.counters).map((e) => e.meter.serverId)) // a gap takes no delta
          .whereNotNull('cpu_time_ns')
          .orderBy([{ column: 'server_id' }, { column: 'seq', order: 'desc' }])) as Array<Record<string, unknown> & { server_id: string }>
      ).map((r) => [r.server_id, r]),
    );
    const rows: Record<string, unknown>[] = [];
    for (const { meter, counters } of due) {
      const seq = Math.floor((tickMs - meter.originMs) / meter.intervalMs);
      const after = last.get(meter.serverId) ?? -1;
      if (seq <= after) continue; // written already (a retry, or the meter's final sample)
      for (let gap = Math.max(after + 1, seq - MAX_GAP_ROWS); gap < seq; gap++) {
        rows.push(sampleRow(meter.serverId, { seq: gap, status: 'missed', sampledAt: new Date(meter.originMs + gap * meter.intervalMs) }, undefined));
      }
      const status: SampleStatus = counters ? 'ok' : 'missed';
      rows.push(sampleRow(meter.serverId, { seq, status, sampledAt: new Date(meter.originMs + seq * meter.intervalMs), counters }, previous.get(meter.serverId)));
    }
    for (let i = 0; i < rows.length; i += 500) {
      const inserted = (await trx('meter_samples').insert(rows.slice(i, i + 500)).onConflict(['server_id', 'seq']).ignore().returning('status')) as Array<{ status: SampleStatus }>;
      for (const r of inserted) written[r.status]++;
    }
    return written;
  });
}

/** The final sample of a stopped meter, after its last one (idempotent: a meter has one final sample). */
export async function recordFinal(db: Knex, serverId: string, at: Date, counters: SampleCounters | null): Promise<boolean> {
  const existing = (await db('meter_samples').select('seq').where({ server_id: serverId, status: 'final' }).first()) as unknown;
  if (existing) return false;
  const last = (await db('meter_samples').where({ server_id: serverId }).max({ seq: 'seq' }).first()) as { seq: number | null } | undefined;
  const seq = last?.seq === null || last?.seq === undefined ? 0 : Number(last.seq) + 1;
  return (await recordSamples(db, serverId, [{ seq, status: 'final', sampledAt: at, counters }])) === 1;
}

function toSample(row: SampleRow): Sample {
  const counters: SampleCounters | null =
    row.status === 'missed'
      ? null
      : {
          powerState: row.power_state,
          cpuTimeNs: num(row.cpu_time_ns),
          memoryKiB: num(row.memory_kib),
          blockReadBytes: num(row.block_read_bytes),
          blockWriteBytes: num(row.block_write_bytes),
          netRxBytes: num(row.net_rx_bytes),
          netTxBytes: num(row.net_tx_bytes),
        };
  return {
    serverId: row.server_id,
    seq: row.seq,
    status: row.status,
    sampledAt: row.sampled_at,
    counters,
    deltas: {
      cpuNs: big(row.cpu_delta_ns) ?? 0n,
      blockReadBytes: big(row.block_read_delta) ?? 0n,
      blockWriteBytes: big(row.block_write_delta) ?? 0n,
      netRxBytes: big(row.net_rx_delta) ?? 0n,
      netTxBytes: big(row.net_tx_delta) ?? 0n,
    },
  };
}

/** A server's samples in seq order (optionally those sampled in [from, to)). */
export async function listSamples(db: Queryable, serverId: string, range: { from?: Date; to?: Date } = {}): Promise<Sample[]> {
  if (!isUuid(serverId)) return [];
  const q = db('meter_samples').select('*').where({ server_id: serverId }).orderBy('seq');
  if (range.from) q.where('sampled_at', '>=', range.from);
  if (range.to) q.where('sampled_at', '<', range.to);
  return ((await q) as SampleRow[]).map(toSample);
}

/** A metered server as usage needs it: its allocation and metering period. */
export interface MeteredServer extends MeterAllocation {
  serverId: string;
  name: string;
  startedAt: Date;
  stoppedAt: Date | null;
}

/** Servers of a project (every project when null) whose metering overlaps [from, to). */
export async function meteredServers(db: Queryable, projectId: string | null, from: Date, to: Date): Promise<MeteredServer[]> {
  const q = db('server_meters as m')
    .join('servers as s', 's.id', 'm.server_id')
    .select('m.server_id', 's.name', 'm.started_at', 'm.stopped_at', 'm.project_id', 'm.host', 'm.domain_name', 'm.vcpus', 'm.ram_mb', 'm.disk_gb', 'm.interval_ms')
    .whereNotNull('m.vcpus')
    .where('m.started_at', '<', to)
    .where((w) => {
      void w.whereNull('m.stopped_at').orWhere('m.stopped_at', '>', from);
    })
    .orderBy(['m.started_at', 'm.server_id']);
  if (projectId) q.where('m.project_id', projectId);
  const rows = (await q) as Array<AllocationRow & ServerMeterRow & { name: string }>;
  return rows.map((r) => ({ serverId: r.server_id, name: r.name, startedAt: r.started_at, stoppedAt: r.stopped_at, ...toAllocation(r) }));
}

/** Sums of the counters' increases of one server over the samples taken in one bucket. */
export interface MeasuredSums {
  serverId: string;
  /** Start of the UTC hour or day the samples were taken in. */
  bucket: Date;
  samples: number;
  missed: number;
  cpuNs: bigint;
  blockReadBytes: bigint;
  blockWriteBytes: bigint;
  netRxBytes: bigint;
  netTxBytes: bigint;
}

/** Per server and UTC hour/day, the sums of the samples taken in [from, to). */
export async function measuredSums(db: Queryable, serverIds: readonly string[], from: Date, to: Date, granularity: 'hour' | 'day'): Promise<MeasuredSums[]> {
  if (serverIds.length === 0) return [];
  const rows = (await db('meter_samples')
    .select('server_id')
    .select(
      db.raw(`date_trunc(?, sampled_at, 'UTC') as bucket`, [granularity]),
      db.raw(`count(*) filter (where status <> 'missed') as samples`),
      db.raw(`count(*) filter (where status = 'missed') as missed`),
      db.raw('sum(cpu_delta_ns)::text as cpu'),
      db.raw('sum(block_read_delta)::text as brd'),
      db.raw('sum(block_write_delta)::text as bwr'),
      db.raw('sum(net_rx_delta)::text as rx'),
      db.raw('sum(net_tx_delta)::text as tx'),
    )
    .whereIn('server_id', serverIds)
    .where('sampled_at', '>=', from)
    .where('sampled_at', '<', to)
    .groupBy('server_id', 'bucket')) as Array<Record<string, string | number | Date>>;
  return rows.map((r) => ({
    serverId: String(r.server_id),
    bucket: new Date(r.bucket as Date),
    samples: Number(r.samples),
    missed: Number(r.missed),
    cpuNs: BigInt(String(r.cpu ?? 0)),
    blockReadBytes: BigInt(String(r.brd ?? 0)),
    blockWriteBytes: BigInt(String(r.bwr ?? 0)),
    netRxBytes: BigInt(String(r.rx ?? 0)),
    netTxBytes: BigInt(String(r.tx ?? 0)),
  }));
}

/** A volume's life as usage sees it: from creation until deleted (its last update), if it is. */
export interface VolumeSpan {
  volumeId: string;
  projectId: string;
  name: string;
  sizeGb: number;
  from: Date;
  to: Date | null;
}

/** Volumes of a project (every project when null) that existed at some instant of [from, to); volumes in error never existed on a host. */
export async function volumeSpans(db: Queryable, projectId: string | null, from: Date, to: Date): Promise<VolumeSpan[]> {
  const q = db('volumes')
    .select('id', 'project_id', 'name', 'size_gb', 'status', 'created_at', 'updated_at')
    .whereNot('status', 'error')
    .where('created_at', '<', to)
    .where((w) => {
      void w.whereNot('status', 'deleted').orWhere('updated_at', '>', from);
    })
    .orderBy(['created_at', 'id']);
  if (projectId) q.where('project_id', projectId);
  const rows = (await q) as Array<{ id: string; project_id: string; name: string; size_gb: number; status: string; created_at: Date; updated_at: Date }>;
  return rows.map((r) => ({
    volumeId: r.id,
    projectId: r.project_id,
    name: r.name,
    sizeGb: r.size_gb,
    from: r.created_at,
    to: r.status === 'deleted' ? r.updated_at : null,
  }));
}
