/**
 * The conductor's side of placement: reads hosts and their claims from the database into the pure
 * scheduler's shape (services/scheduler.ts; by services/hosts.ts's `toHostState`, as the API's host
 * views are), and claims the decision with the same filters re-run on the locked host row. Used by server placement (claimHost) and volume placement (pickVolumeHost).
 */
import type { Knex } from 'knex';
import * as claims from '../../db/repositories/claims';
import * as hosts from '../../db/repositories/hosts';
import { toHostState } from '../../services/hosts';
import {
  checkHost,
  demand,
  DEFAULT_RATIOS,
  DEFAULT_SCHEDULER_CONFIG,
  type AllocationRatios,
  type Decision,
  type HostState,
  type PlacementRequest,
  type Rejection,
  type SchedulerConfig,
} from '../../services/scheduler';

export interface PlacementSettings {
  /** Default allocation ratios (a host's own win). */
  ratios: AllocationRatios;
  ramWeigher: SchedulerConfig['ramWeigher'];
}

export const DEFAULT_PLACEMENT: PlacementSettings = { ratios: DEFAULT_RATIOS, ramWeigher: DEFAULT_SCHEDULER_CONFIG.ramWeigher };

export function schedulerConfig(settings: PlacementSettings): SchedulerConfig {
  return { ...DEFAULT_SCHEDULER_CONFIG, ramWeigher: settings.ramWeigher };
}

/** Every registered host with what is claimed on it (two queries, whatever the number of hosts). */
export async function loadHostStates(db: Knex, settings: PlacementSettings, heartbeatSeconds: number, now = Date.now()): Promise<HostState[]> {
  const [rows, usage] = await Promise.all([
    db('hosts').select(hosts.COLUMNS).orderBy('name') as Promise<Array<Parameters<typeof hosts.toHost>[0]>>,
    claims.usageByHost(db),
  ]);
  return rows.map((r) => toHostState(hosts.toHost(r), usage[r.name] ?? claims.NONE, settings.ratios, heartbeatSeconds, now));
}

/**
 * Claims the decision's host, or its alternates in order, in the database: each try locks the host
 * row (and the group row first, for a group member) and re-runs the filters on what is locked.
 * Returns the host, or null with a rejection per candidate.
 */
export async function claimDecision(
  db: Knex,
  req: { serverId: string; request: PlacementRequest; decision: Decision; settings: PlacementSettings; heartbeatSeconds: number },
): Promise<{ host: string | null; rejected: Rejection[] }> {
  const { request, decision } = req;
  const candidates = decision.host ? [decision.host, ...decision.alternates] : [];
  const lockedRejections: Record<string, Rejection> = {};
  const result = await claims.claim(db, {
    serverId: req.serverId,
    ...demand(request),
    candidates,
    groupId: request.group?.id ?? null,
    fits: (host, claimed, memberHosts) => {
      const state = toHostState(host, claimed, req.settings.ratios, req.heartbeatSeconds, Date.now());
      const group = request.group ? { ...request.group, memberHosts } : null;
      const refusal = checkHost(state, { ...request, group });
      if (!refusal) return undefined;
      lockedRejections[host.name] = refusal;
      return `${refusal.filter}: ${refusal.reason}`;
    },
  });
  const rejected = Object.entries(result.reasons).map(([host, reason]) => lockedRejections[host] ?? { host, filter: 'claim', reason });
  return { host: result.host, rejected };
}
