/**
 * Host claims (placement): the vCPUs, RAM and disk a server holds on a host. A claim is taken in a
 * transaction that locks the host row (SELECT … FOR UPDATE), sums the host's claims and inserts only
 * if the request fits, so concurrent claims on one host queue on its row and never overcommit it.
 * Capacity is the host's reported vcpus / ram_mb / disk_gb, with no overcommit ratio.
 */
import { InvalidInput } from '../../core/errors';
import { isUuid } from '../ids';
import type { Queryable } from '../types';

export interface Resources {
  vcpus: number;
  ramMb: number;
  diskGb: number;
}

export interface Claim extends Resources {
  serverId: string;
  hostName: string;
  createdAt: Date;
}

interface ClaimRow {
  server_id: string;
  host_name: string;
  vcpus: number;
  ram_mb: number;
  disk_gb: number;
  created_at: Date;
}

const COLUMNS = ['server_id', 'host_name', 'vcpus', 'ram_mb', 'disk_gb', 'created_at'];

function toClaim(row: ClaimRow): Claim {
  return { serverId: row.server_id, hostName: row.host_name, vcpus: row.vcpus, ramMb: row.ram_mb, diskGb: row.disk_gb, createdAt: row.created_at };
}

export interface ClaimRequest extends Resources {
  serverId: string;
  /** Host names in order of preference (the scheduler's weighed list). */
  candidates: readonly string[];
}

export interface ClaimResult {
  /** The host now holding the claim, or null when no candidate had room. */
  host: string | null;
  /** Why each candidate tried before the winner (or every candidate, on failure) was refused. */
  reasons: Record<string, string>;
}

/**
 * Claims the resources on the first candidate with room. Idempotent: when the server already holds
 * a claim, returns its host (whatever the candidates). Candidates that are unknown or down are
 * refused with a reason; so is a host too small, e.g. "needs 128 MB RAM, 64 free of 3072".
 */
export async function claim(db: Queryable, request: ClaimRequest): Promise<ClaimResult> {
  if (!isUuid(request.serverId)) throw new InvalidInput(`'${request.serverId}' is not a server id`, [{ field: 'server_id', message: 'not a uuid' }]);
  for (const [field, value] of [['vcpus', request.vcpus], ['ram_mb', request.ramMb], ['disk_gb', request.diskGb]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new InvalidInput(`${field} must be an integer >= 0`, [{ field, message: 'must be an integer >= 0' }]);
  }
  const existing = await get(db, request.serverId);
  if (existing) return { host: existing.hostName, reasons: {} };
  const reasons: Record<string, string> = {};
  for (const hostName of request.candidates) {
    const outcome = await db.transaction(async (trx): Promise<{ host: string } | { reason: string }> => {
      const host = (await trx('hosts').select(['vcpus', 'ram_mb', 'disk_gb', 'status']).where({ name: hostName }).forUpdate().first()) as
        | { vcpus: number; ram_mb: number; disk_gb: number; status: string }
        | undefined;
      if (!host) return { reason: 'host not found' };
      if (host.status !== 'up') return { reason: `host is ${host.status}` };
      const used = await usage(trx, hostName);
      const shortfalls = [
        shortfall(request.vcpus, host.vcpus - used.vcpus, host.vcpus, 'vCPU'),
        shortfall(request.ramMb, host.ram_mb - used.ramMb, host.ram_mb, 'MB RAM'),
        shortfall(request.diskGb, host.disk_gb - used.diskGb, host.disk_gb, 'GB disk'),
      ].filter((s): s is string => s !== undefined);
      if (shortfalls.length > 0) return { reason: shortfalls.join('; ') };
      const [inserted] = (await trx('host_claims')
        .insert({ server_id: request.serverId, host_name: hostName, vcpus: request.vcpus, ram_mb: request.ramMb, disk_gb: request.diskGb })
        .onConflict('server_id')
        .ignore()
        .returning(['host_name'])) as Array<{ host_name: string }>;
      if (inserted) return { host: inserted.host_name };
      // A claim for this server committed meanwhile (a concurrent retry): that one stands; report its host.
      const winner = (await trx('host_claims').select('host_name').where({ server_id: request.serverId }).first()) as { host_name: string } | undefined;
      return winner ? { host: winner.host_name } : { reason: 'claim vanished during a concurrent release' };
    });
    if ('host' in outcome) return { host: outcome.host, reasons };
    reasons[hostName] = outcome.reason;
  }
  return { host: null, reasons };
}

function shortfall(needed: number, free: number, total: number, unit: string): string | undefined {
  return needed > free ? `needs ${needed} ${unit}, ${Math.max(free, 0)} free of ${total}` : undefined;
}

/** The server's claim, or null. */
export async function get(db: Queryable, serverId: string): Promise<Claim | null> {
  if (!isUuid(serverId)) return null;
  const row = (await db('host_claims').select(COLUMNS).where({ server_id: serverId }).first()) as ClaimRow | undefined;
  return row ? toClaim(row) : null;
}

/** Drops the server's claim. Idempotent: true when there was one. */
export async function release(db: Queryable, serverId: string): Promise<boolean> {
  if (!isUuid(serverId)) return false;
  const count = await db('host_claims').where({ server_id: serverId }).delete();
  return count > 0;
}

const SUMS = ['coalesce(sum(vcpus), 0)::int as vcpus', 'coalesce(sum(ram_mb), 0)::int as ram_mb', 'coalesce(sum(disk_gb), 0)::int as disk_gb'];

/** What the claims on one host add up to (zeros for a host without claims or unknown). */
export async function usage(db: Queryable, hostName: string): Promise<Resources> {
  const row = (await db('host_claims')
    .select(SUMS.map((s) => db.raw(s)))
    .where({ host_name: hostName })
    .first()) as { vcpus: number; ram_mb: number; disk_gb: number } | undefined;
  return { vcpus: row?.vcpus ?? 0, ramMb: row?.ram_mb ?? 0, diskGb: row?.disk_gb ?? 0 };
}

/** Usage of every registered host (zeros for hosts without claims), by host name. */
export async function usageByHost(db: Queryable): Promise<Record<string, Resources>> {
  const rows = (await db('hosts')
    .leftJoin('host_claims', 'host_claims.host_name', 'hosts.name')
    .groupBy('hosts.name')
    .orderBy('hosts.name')
    .select(['hosts.name', ...SUMS.map((s) => db.raw(s.replace(/sum\((\w+)\)/, 'sum(host_claims.$1)')))])) as Array<{
    name: string;
    vcpus: number;
    ram_mb: number;
    disk_gb: number;
  }>;
  const out: Record<string, Resources> = {};
  for (const r of rows) out[r.name] = { vcpus: r.vcpus, ramMb: r.ram_mb, diskGb: r.disk_gb };
  return out;
}
