/**
 * Host claims (placement): the vCPUs, RAM and disk a server holds on a host. A claim is taken in a
 * transaction that locks the host row (SELECT … FOR UPDATE), sums the host's claims and inserts only
 * if the request fits, so concurrent claims on one host queue on its row and never overcommit it.
 * Capacity is the host's reported vcpus / ram_mb / disk_gb, with no overcommit ratio.
 */
import { InvalidInput } from '../../core/errors';
import { isUuid } from '../ids';
import type { Queryable } from '../types';
import { COLUMNS as HOST_COLUMNS, toHost, type Host } from './hosts';

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
  /**
   * A server group whose row is locked (FOR UPDATE, before the host row) for the claim: concurrent
   * claims of one group's members queue, so each sees where the others went. Their hosts go to `fits`.
   */
  groupId?: string | null | undefined;
  /**
   * Decides on the locked host row whether the request fits there; a reason when it does not.
   * Default: the host is up and has the resources free at its reported capacity.
   */
  fits?: ((host: Host, claimed: Resources, groupMemberHosts: string[]) => string | undefined) | undefined;
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
      const memberHosts = request.groupId ? await lockGroup(trx, request.groupId, request.serverId) : [];
      const row = (await trx('hosts').select(HOST_COLUMNS).where({ name: hostName }).forUpdate().first()) as Parameters<typeof toHost>[0] | undefined;
      if (!row) return { reason: 'host not found' };
      const host = toHost(row);
      const used = await usage(trx, hostName);
      const refusal = (request.fits ?? fitsAsReported(request))(host, used, memberHosts);
      if (refusal !== undefined) return { reason: refusal };
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

/** The default check: up, and room at the reported capacity (no allocation ratios). */
function fitsAsReported(requested: Resources) {
  return (host: Host, used: Resources): string | undefined => {
    if (host.status !== 'up') return `host is ${host.status}`;
    const shortfalls = [
      shortfall(requested.vcpus, host.vcpus - used.vcpus, host.vcpus, 'vCPU'),
      shortfall(requested.ramMb, host.ramMb - used.ramMb, host.ramMb, 'MB RAM'),
      shortfall(requested.diskGb, host.diskGb - used.diskGb, host.diskGb, 'GB disk'),
    ].filter((x): x is string => x !== undefined);
    return shortfalls.length > 0 ? shortfalls.join('; ') : undefined;
  };
}

/**
 * Locks the server group's row for the rest of the transaction and returns the hosts its other
 * members hold claims on (one entry per member). A group that is gone has no members.
 */
async function lockGroup(trx: Queryable, groupId: string, serverId: string): Promise<string[]> {
  await trx('server_groups').select('id').where({ id: groupId }).forUpdate().first();
  const rows = (await trx('server_group_members')
    .join('host_claims', 'host_claims.server_id', 'server_group_members.server_id')
    .where('server_group_members.group_id', groupId)
    .whereNot('server_group_members.server_id', serverId)
    .select('host_claims.host_name')) as Array<{ host_name: string }>;
  return rows.map((r) => r.host_name);
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

/** No claims at all. */
export const NONE: Readonly<Resources> = Object.freeze({ vcpus: 0, ramMb: 0, diskGb: 0 });

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
