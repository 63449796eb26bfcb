/**
 * Hypervisor hosts as their agents last reported them (admins only), whether any is alive, and a
 * host with its claims as the scheduler sees it (`toHostState`: one rule for the API's host views,
 * the conductor's placement and the host gauges of GET /metrics).
 */
import type { Knex } from 'knex';
import { NotFound } from '../core/errors';
import { metrics } from '../core/metrics';
import * as claims from '../db/repositories/claims';
import * as hosts from '../db/repositories/hosts';
import type { Page, PageRequest } from '../db/types';
import { requireAdmin, type AuthContext } from './identity';
import { DEFAULT_RATIOS, type AllocationRatios, type HostState, type Resources } from './scheduler';

export type Host = hosts.Host;
export type HostSettings = hosts.HostSettings;

/** A host row and its claims as the scheduler sees them; `ratios` are the defaults (a host's own win). */
export function toHostState(h: Host, claimed: Resources, ratios: AllocationRatios, heartbeatSeconds: number, now: number): HostState {
  return {
    name: h.name,
    enabled: h.enabled,
    alive: hosts.isAlive(h, heartbeatSeconds, now),
    availabilityZone: h.availabilityZone,
    capacity: { vcpus: h.vcpus, ramMb: h.ramMb, diskGb: h.diskGb },
    ratios: {
      cpu: h.cpuAllocationRatio ?? ratios.cpu,
      ram: h.ramAllocationRatio ?? ratios.ram,
      disk: h.diskAllocationRatio ?? ratios.disk,
    },
    claimed,
    capabilities: h.capabilities,
    lastBuildFailureAt: h.lastBuildFailureAt ? new Date(h.lastBuildFailureAt).getTime() : null,
  };
}

/** A host row with its state (claims, effective ratios, liveness) at the time it was read. */
export interface HostView {
  host: Host;
  state: HostState;
}

/** Every host (a page of them) with what is claimed on each: two queries, whatever the number of hosts. */
async function listWithClaims(db: Knex, page: PageRequest): Promise<{ page: Page<Host>; usage: Record<string, Resources> }> {
  const [found, usage] = await Promise.all([hosts.list(db, page), claims.usageByHost(db)]);
  return { page: found, usage };
}

export function createHostService(db: Knex, heartbeatSeconds: number, ratios: AllocationRatios = DEFAULT_RATIOS) {
  const view = (host: Host, claimed: Resources): HostView => ({ host, state: toHostState(host, claimed, ratios, heartbeatSeconds, Date.now()) });
  const viewOr404 = async (name: string, host: Host | null): Promise<HostView> => {
    if (!host) throw new NotFound(`host ${name} not found`);
    return view(host, await claims.usage(db, name));
  };

  return {
    isAlive: (host: Host) => hosts.isAlive(host, heartbeatSeconds),
    list(auth: AuthContext, page: PageRequest): Promise<Page<Host>> {
      requireAdmin(auth);
      return hosts.list(db, page);
    },
    async get(auth: AuthContext, name: string): Promise<Host> {
      requireAdmin(auth);
      const host = await hosts.get(db, name);
      if (!host) throw new NotFound(`host ${name} not found`);
      return host;
    },
    /** A page of hosts, each with its state. */
    async listViews(auth: AuthContext, page: PageRequest): Promise<Page<HostView>> {
      requireAdmin(auth);
      const { page: found, usage } = await listWithClaims(db, page);
      return { items: found.items.map((h) => view(h, usage[h.name] ?? claims.NONE)), next: found.next };
    },
    async showView(auth: AuthContext, name: string): Promise<HostView> {
      requireAdmin(auth);
      return viewOr404(name, await hosts.get(db, name));
    },
    /** Changes an administrator's settings of a host (undefined: unchanged). */
    async updateSettings(auth: AuthContext, name: string, patch: { [K in keyof HostSettings]?: HostSettings[K] | undefined }): Promise<HostView> {
      requireAdmin(auth);
      return viewOr404(name, await hosts.updateSettings(db, name, patch));
    },
    /** For readiness: throws unless some host agent heartbeats. */
    async assertSomeAlive(): Promise<void> {
      const page = await hosts.list(db, { limit: 1000 });
      if (!page.items.some((h) => hosts.isAlive(h, heartbeatSeconds))) {
        throw new Error(page.items.length === 0 ? 'no host agent has registered yet' : 'no host agent heartbeat is recent');
      }
    },
  };
}

export type HostService = ReturnType<typeof createHostService>;

const GAUGED = [
  ['vcpus', 'vcpus'],
  ['ram_mb', 'ramMb'],
  ['disk_gb', 'diskGb'],
] as const;

let gaugeDb: Knex | undefined;

/**
 * Host capacity and usage gauges (core/metrics.ts) are filled from `db` whenever the registry is
 * scraped (the api and the conductor have a database; agents have none). The last database given
 * wins: one per process in production; tests start clouds one after another.
 */
export function collectHostGauges(db: Knex): void {
  const m = metrics();
  if (!gaugeDb) {
    const previous = m.registry.metrics.bind(m.registry);
    m.registry.metrics = async () => {
      await refreshHostGauges().catch(() => undefined); // a scrape still answers when the database does not
      return previous();
    };
  }
  gaugeDb = db;
}

async function refreshHostGauges(): Promise<void> {
  const db = gaugeDb;
  if (!db) return;
  const m = metrics();
  const { page, usage } = await listWithClaims(db, { limit: 1000 });
  m.hostCapacity.reset();
  m.hostUsage.reset();
  for (const h of page.items) {
    for (const [label, key] of GAUGED) {
      m.hostCapacity.set({ host: h.name, resource: label }, h[key]);
      m.hostUsage.set({ host: h.name, resource: label }, usage[h.name]?.[key] ?? 0);
    }
  }
}
