/**
 * Project quotas (Keystone's limits, as Stratus keeps them): what a request takes of its project's
 * quota (Nova counts instances, cores and RAM; Neutron ports; Cinder volumes and gigabytes), and a
 * project's limits, used and reserved amounts, which its members read and admins set. The API
 * reserves a request's amounts before any workflow starts; the create flow reserves them again (a
 * no-op when the API did) and the quota repository enforces the limits.
 */
import type { Knex } from 'knex';
import * as quotas from '../db/repositories/quotas';
import { requireAdmin, type AuthContext, type IdentityService } from './identity';

export type QuotaAmounts = quotas.QuotaAmounts;
export type QuotaLimits = quotas.QuotaLimits;
export type QuotaReport = Record<quotas.QuotaResource, quotas.QuotaLine>;

export interface ServerQuotaPlan {
  flavor: { vcpus: number; ramMb: number };
  /** Requested NICs: a network_id makes a new port, a port_id reuses one. */
  networks: ReadonlyArray<{ networkId?: string } | { portId: string }>;
  /** Requested volumes: a size makes a new one, an id reuses one. */
  volumes: ReadonlyArray<{ volumeId: string } | { sizeGb: number }>;
}

export function serverQuotaAmounts(plan: ServerQuotaPlan): QuotaAmounts {
  const newVolumes = plan.volumes.flatMap((v) => ('sizeGb' in v ? [v.sizeGb] : []));
  return {
    servers: 1,
    vcpus: plan.flavor.vcpus,
    ram_mb: plan.flavor.ramMb,
    ports: plan.networks.filter((n) => !('portId' in n)).length,
    volumes: newVolumes.length,
    volume_gb: newVolumes.reduce((a, b) => a + b, 0),
  };
}

export function volumeQuotaAmounts(sizeGb: number): QuotaAmounts {
  return { volumes: 1, volume_gb: sizeGb };
}

/** `identity` answers which projects a caller sees (its own; every one for admins): another's is not found. */
export function createQuotaService(db: Knex, defaults: QuotaLimits, identity: IdentityService) {
  return {
    /** A project's limit, used and reserved amount per resource: members see their own project's. */
    async report(auth: AuthContext, projectId: string): Promise<QuotaReport> {
      await identity.getProject(auth, projectId);
      return quotas.report(db, projectId, defaults);
    },
    /** Sets a project's limits (admins only); the resources not named keep theirs. */
    async setLimits(auth: AuthContext, projectId: string, limits: QuotaAmounts): Promise<QuotaReport> {
      requireAdmin(auth);
      await identity.getProject(auth, projectId);
      await quotas.setLimits(db, projectId, limits);
      return quotas.report(db, projectId, defaults);
    },
  };
}

export type QuotaService = ReturnType<typeof createQuotaService>;
