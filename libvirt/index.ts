/**
 * The libvirt layer's public surface: the `Hypervisor` driver contract, its Stratus-level types,
 * `openHypervisor` (libvirt through koffi) and `LibvirtError`. Hypervisor ids never leave this layer.
 */
export type {
  DhcpHost,
  DiskFormat,
  DiskSpec,
  DomainDisk,
  DomainSpec,
  DomainStats,
  DomainState,
  DomainType,
  HostInfo,
  Hypervisor,
  HypervisorCapabilities,
  InterfaceSpec,
  NetworkSpec,
  OverlayVolumeSpec,
  PoolInfo,
  VolumeInfo,
  VolumeSpec,
} from './hypervisor';
export { openHypervisor, type OpenHypervisorOptions } from './libvirt-hypervisor';
export { LibvirtError, VirErr } from './ffi';
