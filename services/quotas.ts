/**
 * What a request takes of its project's quota (Nova counts instances, cores and RAM; Neutron ports;
 * Cinder volumes and gigabytes). The API reserves it before any workflow starts; the create flow
 * reserves it again (a no-op when the API did) and the quota repository enforces the limits.
 */
import type { QuotaAmounts } from '../db/repositories/quotas';

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
