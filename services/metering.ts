/**
 * Usage and cost (Ceilometer + a billing engine's rules), used by the API's usage and rates routes.
 *
 * Allocation rules (what a project holds, whatever it does with it):
 * - A server's vCPUs, RAM and root disk (its flavor when metering started) count from the moment
 *   metering started (the create flow's last step: the server is ACTIVE) until metering stopped (the
 *   delete flow's last step). In between, every state counts: ACTIVE, SHUTOFF (the host keeps its
 *   claim, as Nova's does), and ERROR or a task in progress. A server that never became ACTIVE (BUILD
 *   that failed, ERROR at create) was never metered and costs nothing.
 * - A volume's size counts from its creation until it is deleted, in every status but 'error'.
 * - An open period (still metered, still existing) counts until `to` or now, whichever is earlier:
 *   ask for a period in the past to get an answer that never changes.
 * Measured usage (CPU time, disk and network bytes) is the sum of the counters' increases recorded
 * with the samples taken in the period (a sample holds the increase since the previous reading, so a
 * gap loses nothing: the next reading carries it).
 *
 * Exactness: times are whole milliseconds, quantities exact integers (vCPU·ms, MiB·ms, GiB·ms, ns,
 * bytes) until they are shown: `*_seconds` are exact (3 decimals), `*_hours` are rounded half-up to
 * 6 decimals for display. Cost: price (≤ 9 decimals) × exact quantity, rounded half-up to the
 * currency's minor unit (2 decimals) once per line (rate × unit); a currency's total is the sum of
 * its lines. BigInt throughout: never a float.
 */
import type { Knex } from 'knex';
import { Forbidden, InvalidInput, NotFound } from '../core/errors';
import { isUuid } from '../db/ids';
import * as meters from '../db/repositories/meters';
import * as rates from '../db/repositories/rates';
import { hasRole, requireAdmin, type AuthContext } from './identity';

export type Rate = rates.Rate;
export type RateUnit = rates.RateUnit;

export type Granularity = 'hour' | 'day';

/** Exact quantities in base units. */
export interface Quantities {
  vcpuMs: bigint;
  ramMbMs: bigint;
  diskGbMs: bigint;
  volumeGbMs: bigint;
  cpuNs: bigint;
  blockReadBytes: bigint;
  blockWriteBytes: bigint;
  netRxBytes: bigint;
  netTxBytes: bigint;
  samples: number;
  missed: number;
}

const zero = (): Quantities => ({
  vcpuMs: 0n,
  ramMbMs: 0n,
  diskGbMs: 0n,
  volumeGbMs: 0n,
  cpuNs: 0n,
  blockReadBytes: 0n,
  blockWriteBytes: 0n,
  netRxBytes: 0n,
  netTxBytes: 0n,
  samples: 0,
  missed: 0,
});

function add(into: Quantities, q: Partial<Quantities>): void {
  for (const [k, v] of Object.entries(q) as Array<[keyof Quantities, bigint | number]>) {
    (into as unknown as Record<string, bigint | number>)[k] = typeof v === 'bigint' ? (into[k] as bigint) + v : (into[k] as number) + v;
  }
}

const HOUR_MS = 3_600_000n;
const MIB_PER_GIB = 1024n;
const GIB = 1024n ** 3n;

/** Base units per unit of each rate unit: quantity in units = base / divisor. */
export const UNIT_BASE: Record<rates.RateUnit, { of: (q: Quantities) => bigint; divisor: bigint }> = {
  vcpu_hour: { of: (q) => q.vcpuMs, divisor: HOUR_MS },
  ram_gb_hour: { of: (q) => q.ramMbMs, divisor: HOUR_MS * MIB_PER_GIB },
  disk_gb_hour: { of: (q) => q.diskGbMs, divisor: HOUR_MS },
  volume_gb_hour: { of: (q) => q.volumeGbMs, divisor: HOUR_MS },
  cpu_second: { of: (q) => q.cpuNs, divisor: 1_000_000_000n },
  io_gb: { of: (q) => q.blockReadBytes + q.blockWriteBytes + q.netRxBytes + q.netTxBytes, divisor: GIB },
};

/** num/den as a decimal string with `digits` decimals, rounded half-up (num, den ≥ 0). */
export function decimal(num: bigint, den: bigint, digits: number): string {
  const scale = 10n ** BigInt(digits);
  const scaled = (num * scale * 2n + den) / (den * 2n);
  if (digits === 0) return scaled.toString();
  const s = scaled.toString().padStart(digits + 1, '0');
  return `${s.slice(0, -digits)}.${s.slice(-digits)}`;
}

/** A decimal string ('12.5') as an integer count of 10^-digits ('12.5', 9 → 12500000000n). */
export function scaledInteger(value: string, digits: number): bigint {
  const [whole = '0', frac = ''] = value.split('.');
  if (frac.length > digits && /[1-9]/.test(frac.slice(digits))) throw new Error(`${value} has more than ${digits} decimals`);
  return BigInt(whole) * 10n ** BigInt(digits) + BigInt((frac.slice(0, digits) || '0').padEnd(digits, '0'));
}

/**
 * The project a usage or cost query is about: the caller's by default (every role, readers included);
 * another one, or all (null), for admins only.
 */
export function usageScope(auth: AuthContext, requested: string | undefined): string | null {
  if (requested === undefined || requested === auth.project.id) return auth.project.id;
  if (!hasRole(auth, 'admin')) throw new Forbidden("only admins read another project's usage", [{ field: 'query.project_id', message: 'not your project' }]);
  if (requested === 'all') return null;
  // The spec's pattern already refuses most; a uuid-shaped non-uuid must not reach the database's cast.
  if (!isUuid(requested)) throw new InvalidInput(`project_id ${requested} is not a project id`, [{ field: 'query.project_id', message: 'a project id or all' }]);
  return requested;
}

export interface UsageQuery {
  /** null: every project (admins only: see `usageScope`). */
  projectId: string | null;
  from: Date;
  to: Date;
  granularity: Granularity;
}

const MAX_BUCKETS = 2000;

/** UTC bucket boundaries covering [from, to): the first and last bucket may be partial. */
export function buckets(from: Date, to: Date, granularity: Granularity): Array<{ start: Date; end: Date }> {
  const out: Array<{ start: Date; end: Date }> = [];
  let start = from.getTime();
  while (start < to.getTime()) {
    const d = new Date(start);
    const next =
      granularity === 'hour'
        ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours() + 1)
        : Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
    const end = Math.min(next, to.getTime());
    out.push({ start: new Date(start), end: new Date(end) });
    if (out.length > MAX_BUCKETS) {
      throw new InvalidInput(`from..to spans more than ${MAX_BUCKETS} ${granularity}s`, [{ field: 'query.granularity', message: 'use day, or a shorter period' }]);
    }
    start = end;
  }
  return out;
}

/** Milliseconds [a, b) and [c, d) share (d null: open, until `now`). */
function overlapMs(a: Date, b: Date, c: Date, d: Date | null, now: number): bigint {
  const end = Math.min(b.getTime(), d ? d.getTime() : now);
  return BigInt(Math.max(0, end - Math.max(a.getTime(), c.getTime())));
}

export interface ServerUsage {
  server: meters.MeteredServer;
  quantities: Quantities;
}
export interface VolumeUsage {
  volume: meters.VolumeSpan;
  quantities: Quantities;
}
export interface UsageReport {
  servers: ServerUsage[];
  volumes: VolumeUsage[];
  periods: Array<{ start: Date; end: Date; quantities: Quantities }>;
  total: Quantities;
}

export function createMeteringService({ db, now = () => Date.now() }: { db: Knex; now?: () => number }) {
  function validate(q: UsageQuery): void {
    if (!(q.from.getTime() < q.to.getTime())) throw new InvalidInput('from must be before to', [{ field: 'query.to', message: 'must be after from' }]);
  }

  async function usage(q: UsageQuery): Promise<UsageReport> {
    validate(q);
    const periods = buckets(q.from, q.to, q.granularity).map((b) => ({ ...b, quantities: zero() }));
    const at = now();
    const [metered, volumes] = await Promise.all([meters.meteredServers(db, q.projectId, q.from, q.to), meters.volumeSpans(db, q.projectId, q.from, q.to)]);
    const sums = await meters.measuredSums(db, metered.map((s) => s.serverId), q.from, q.to, q.granularity);
    const perServer = new Map(metered.map((s) => [s.serverId, { server: s, quantities: zero() }]));
    for (const p of periods) {
      for (const s of metered) {
        const ms = overlapMs(p.start, p.end, s.startedAt, s.stoppedAt, at);
        const alloc = { vcpuMs: ms * BigInt(s.vcpus), ramMbMs: ms * BigInt(s.ramMb), diskGbMs: ms * BigInt(s.diskGb) };
        add(p.quantities, alloc);
        add(perServer.get(s.serverId)!.quantities, alloc);
      }
    }
    const volumeUsage = volumes.map((v) => {
      const quantities = zero();
      for (const p of periods) {
        const vol = { volumeGbMs: overlapMs(p.start, p.end, v.from, v.to, at) * BigInt(v.sizeGb) };
        add(quantities, vol);
        add(p.quantities, vol);
      }
      return { volume: v, quantities };
    });
    for (const m of sums) {
      // A bucket starts at the hour/day boundary; the first period may start later (a partial one).
      const period = periods.find((p) => p.end.getTime() > m.bucket.getTime());
      const measured = {
        cpuNs: m.cpuNs,
        blockReadBytes: m.blockReadBytes,
        blockWriteBytes: m.blockWriteBytes,
        netRxBytes: m.netRxBytes,
        netTxBytes: m.netTxBytes,
        samples: m.samples,
        missed: m.missed,
      };
      if (period) add(period.quantities, measured);
      add(perServer.get(m.serverId)!.quantities, measured);
    }
    const total = zero();
    for (const p of periods) add(total, p.quantities);
    return { servers: [...perServer.values()], volumes: volumeUsage, periods, total };
  }

  /** Each rate in force during [from, to) priced on the usage of the part of the period it covers. */
  async function cost(q: Omit<UsageQuery, 'granularity'>) {
    validate({ ...q, granularity: 'day' });
    const inForce = await rates.overlapping(db, q.from, q.to);
    const lines = [];
    for (const rate of inForce) {
      const from = new Date(Math.max(q.from.getTime(), rate.effectiveFrom.getTime()));
      const to = new Date(Math.min(q.to.getTime(), rate.effectiveTo?.getTime() ?? Infinity));
      const { total } = await usage({ projectId: q.projectId, from, to, granularity: 'day' });
      const { of, divisor } = UNIT_BASE[rate.unit];
      const base = of(total);
      const priceNano = scaledInteger(rate.price, 9);
      // amount in minor units (cents) = price · base / divisor · 100, rounded half-up once
      const minor = (priceNano * base * 100n * 2n + divisor * 1_000_000_000n) / (divisor * 1_000_000_000n * 2n);
      lines.push({ rate, from, to, quantity: decimal(base, divisor, 9), amountMinor: minor });
    }
    const totals = new Map<string, bigint>();
    for (const l of lines) totals.set(l.rate.currency, (totals.get(l.rate.currency) ?? 0n) + l.amountMinor);
    return { lines, totals: [...totals.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([currency, amountMinor]) => ({ currency, amountMinor })) };
  }

  return {
    usage,
    cost,
    /** Rates, read by everyone, set and removed by admins. */
    listRates: (): Promise<Rate[]> => rates.list(db),
    async getRate(id: string): Promise<Rate> {
      const rate = await rates.get(db, id);
      if (!rate) throw new NotFound(`rate ${id} not found`);
      return rate;
    },
    createRate(auth: AuthContext, input: { unit: RateUnit; currency: string; price: string; effectiveFrom: Date }): Promise<Rate> {
      requireAdmin(auth);
      return rates.create(db, input);
    },
    removeRate(auth: AuthContext, id: string): Promise<void> {
      requireAdmin(auth);
      return rates.remove(db, id);
    },
  };
}

export type MeteringService = ReturnType<typeof createMeteringService>;

/** Minor units as a decimal string of the major unit ('1234' → '12.34'). */
export function minorToDecimal(minor: bigint): string {
  return decimal(minor, 100n, 2);
}
