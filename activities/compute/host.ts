/**
 * Compute activities that run on a hypervisor host (task queue `host.<name>`): they talk to libvirt
 * through the Hypervisor driver and never to the database.
 */
import type { Hypervisor } from '../../libvirt';
import type { HostReport } from './control';

export interface ComputeHostDeps {
  hostName: string;
  /** The storage pool whose capacity is the host's disk capacity. */
  storagePool: string;
  hypervisor: Hypervisor;
  /** Capacity from configuration wins over what libvirt reports (e.g. to keep room for the host itself). */
  overrides: { vcpus?: number | undefined; ramMb?: number | undefined; diskGb?: number | undefined };
}

export function createComputeHostActivities({ hostName, storagePool, hypervisor, overrides }: ComputeHostDeps) {
  return {
    /** This host's identity, capacity and capabilities, as the scheduler sees them. */
    async describeHost(): Promise<HostReport> {
      const info = await hypervisor.hostInfo(storagePool);
      return {
        name: hostName,
        libvirtUri: info.uri,
        libvirtVersion: info.libvirtVersion,
        vcpus: overrides.vcpus ?? info.vcpus,
        ramMb: overrides.ramMb ?? info.ramMb,
        diskGb: overrides.diskGb ?? info.diskGb,
        capabilities: { ...hypervisor.capabilities },
      };
    },
  };
}

export type ComputeHostActivities = ReturnType<typeof createComputeHostActivities>;
