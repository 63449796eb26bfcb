/**
 * Compute activities that run on a hypervisor host (task queue `host.<name>`): they talk to libvirt
 * through the Hypervisor driver and never to the database.
 */
import type { Hypervisor } from '../../libvirt';
import type { HostReport } from './control';

export interface ComputeHostDeps {
  hostName: string;
  hypervisor: Hypervisor;
  /** Capacity from configuration wins over what libvirt reports (e.g. to keep room for the host itself). */
  overrides: { vcpus?: number | undefined; ramMb?: number | undefined; diskGb?: number | undefined };
}

export function createComputeHostActivities({ hostName, hypervisor, overrides }: ComputeHostDeps) {
  return {
    /** This host's identity, capacity and capabilities, as the scheduler sees them. */
    async describeHost(): Promise<HostReport> {
      const info = await hypervisor.hostInfo();
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
