/**
 * The hypervisor driver contract (after nova/virt/driver.py), as the host agent sees it.
 *
 * Rules that hold for every method:
 * - Things are named by their Stratus-level names (domain name, pool name, volume name, network
 *   name) and by file paths. Hypervisor ids (libvirt handles, libvirt UUIDs) never leave the driver.
 * - Every method is async and never blocks the event loop.
 * - Failures of the hypervisor reject with `LibvirtError` (`code` = libvirt's virErrorNumber,
 *   `message` = libvirt's text). A thing that must exist and does not is a `LibvirtError` whose
 *   `isNotFound` is true (VIR_ERR_NO_DOMAIN 42, NO_NETWORK 43, NO_STORAGE_POOL 49, NO_STORAGE_VOL 50).
 *   Invalid specs (bad MAC, bad name, ...) reject with `InvalidInput` before libvirt is called.
 * - "Idempotent" below means: calling again with the same arguments after a success (e.g. a
 *   retried Temporal activity) succeeds and leaves the same state.
 * - Units are in the names: `...Bytes`, `...Mb` (MiB), `...Gb` (GiB), `...Ms`.
 */

export type DomainType = 'qemu' | 'kvm' | 'test';
export type DiskFormat = 'raw' | 'qcow2';

/**
 * The state of a domain (libvirt's virDomainState). 'shutdown' means "being shut down", 'shutoff'
 * means "off". 'blocked' is a running domain waiting on a resource.
 */
export type DomainState = 'nostate' | 'running' | 'blocked' | 'paused' | 'shutdown' | 'shutoff' | 'crashed' | 'pmsuspended';

export interface DiskSpec {
  /** Absolute path of the image file on the host (e.g. a pool volume's path). */
  path: string;
  format: DiskFormat;
  /** Device name requested from the hypervisor, e.g. 'vda', 'vdb'. Guests may name disks otherwise. */
  target: string;
  /**
   * How the disk is identified (guests see it as /dev/disk/by-id/virtio-<serial>). At most 20
   * characters of [A-Za-z0-9_.+-] (virtio-blk exposes 20 bytes). Unique within a domain.
   */
  serial: string;
  /** Default 'virtio'. */
  bus?: 'virtio' | 'scsi' | 'sata';
  readonly?: boolean;
}

export interface InterfaceSpec {
  /** Name of a network defined with `defineNetwork`. */
  network: string;
  /** Unicast MAC, lower or upper case hex, e.g. '52:54:00:12:34:56'. */
  mac: string;
  /** Default 'virtio'. */
  model?: 'virtio' | 'e1000';
}

export interface DomainSpec {
  /** Stratus name of the server's domain. [A-Za-z0-9_.-], 1..64 characters. */
  name: string;
  vcpus: number;
  memoryMb: number;
  /** 'kvm' needs a usable /dev/kvm, 'qemu' is TCG emulation, 'test' is libvirt's test driver. */
  domainType: DomainType;
  /** Guest architecture; default: the host's. */
  arch?: string;
  disks: DiskSpec[];
  interfaces: InterfaceSpec[];
  /** Direct kernel boot: host path of a kernel image. */
  kernel?: string;
  /** Direct kernel boot: host path of an initrd/initramfs (requires `kernel`). */
  initrd?: string;
  /** Kernel command line (requires `kernel`), e.g. 'console=ttyS0 root=/dev/vda'. */
  cmdline?: string;
  /**
   * When set, the guest's first serial port (ttyS0, also its console) is written to this host file
   * (created/appended by the hypervisor). Used for boot detection and console logs.
   */
  serialLogPath?: string;
}

/**
 * A domain's usage counters at one instant (for metering). Counters are cumulative since the
 * domain started; null where the driver reports nothing (libvirt's test driver has no block or
 * network counters).
 */
export interface DomainStats {
  name: string;
  state: DomainState;
  /** CPU time used by the guest since it started, ns (the test driver reports its wall clock). */
  cpuTimeNs: number | null;
  /** Memory currently given to the guest (balloon), KiB. */
  memoryKiB: number | null;
  blockReadBytes: number | null;
  blockWriteBytes: number | null;
  netRxBytes: number | null;
  netTxBytes: number | null;
}

export interface VolumeSpec {
  /** File name inside the pool, e.g. 'server-1-root.qcow2'. */
  name: string;
  capacityBytes: number;
  format: DiskFormat;
}

export interface OverlayVolumeSpec {
  name: string;
  /** Absolute path of the backing (base) image, e.g. a cached Glance image. Never written to. */
  backingPath: string;
  backingFormat: DiskFormat;
  /** Virtual size of the overlay; at least the backing image's virtual size. */
  capacityBytes: number;
}

export interface VolumeInfo {
  name: string;
  path: string;
  capacityBytes: number;
  /** As reported by the pool: 'raw', 'qcow2', or another format libvirt detected. */
  format: string;
  /** Set when the volume is an overlay. */
  backingPath?: string;
  backingFormat?: string;
}

export interface PoolInfo {
  name: string;
  /** Directory (dir pools) or device of the pool. */
  path: string;
  capacityBytes: number;
  allocationBytes: number;
  availableBytes: number;
}

export interface DhcpHost {
  mac: string;
  ip: string;
  /** Hostname handed out with the lease. */
  name?: string;
}

export interface NetworkSpec {
  /** Stratus network name (on the host). [A-Za-z0-9_.-], 1..64 characters. */
  name: string;
  /** Linux bridge name, at most 15 characters, e.g. 'stbr-1a2b'. */
  bridge: string;
  /** 'nat' (default): guests reach the outside through host NAT. 'isolated': no forwarding. */
  forward?: 'nat' | 'isolated';
  ipv4: {
    /** The host's (gateway's) address on the bridge, e.g. '10.0.0.1'. */
    address: string;
    /** Prefix length, e.g. 24. */
    prefix: number;
    dhcp?: {
      rangeStart: string;
      rangeEnd: string;
      /** Fixed leases: MAC -> IP (what Neutron ports are). */
      hosts?: DhcpHost[];
    };
  };
  mtu?: number;
  /** Start with the host (default true). The test driver ignores it. */
  autostart?: boolean;
}

/** A disk as found in a domain definition. */
export interface DomainDisk {
  target: string;
  path?: string;
  format?: string;
  serial?: string;
  bus?: string;
  device: string;
}

export interface HostInfo {
  hostname: string;
  /** Logical CPUs of the host. */
  vcpus: number;
  /** Host memory in MiB. */
  ramMb: number;
  /** Capacity of the storage pool named in the call, in GiB (rounded down). */
  diskGb: number;
  /** Version of the libvirt library, e.g. '9.0.0'. */
  libvirtVersion: string;
  /** The connection URI as libvirt canonicalised it, e.g. 'test:///default'. */
  uri: string;
}

/**
 * What this hypervisor can do; decided once when the connection opens, from the driver's type as
 * reported by `virConnectGetType` (so `test+unix:///default` counts as the test driver too), not by
 * probing: probes would need a scratch domain/network and leave traces.
 */
export interface HypervisorCapabilities {
  /** Driver name as libvirt reports it: 'QEMU', 'Test', ... */
  driver: string;
  /**
   * True when disks can be attached to / detached from a running domain (virDomainAttachDeviceFlags).
   * False on the test driver (VIR_ERR_NO_SUPPORT): there `attachDisk`/`detachDisk` edit the persistent
   * definition instead (the domain XML is read, the disk added/removed, and the domain redefined),
   * so a running test domain only sees the change after its next start.
   */
  hotplugDisks: boolean;
  /**
   * True when DHCP host entries are changed in place with virNetworkUpdate (live and persistent, no
   * restart of dnsmasq). Both the QEMU host's network driver and the test driver support it
   * (measured on libvirt 9.0). When false, the persistent definition is redefined and a running
   * network only picks the change up when restarted.
   */
  liveDhcpHostUpdate: boolean;
  /** Calls this instance runs at once (one libvirt connection each). */
  maxConcurrentCalls: number;
}

export interface Hypervisor {
  readonly capabilities: HypervisorCapabilities;

  /**
   * Host facts for registration and scheduling. `pool` names the storage pool whose capacity is
   * reported as `diskGb`; it must exist (else NO_STORAGE_POOL). Read-only.
   */
  hostInfo(pool: string): Promise<HostInfo>;

  // ---------------------------------------------------------------- domains

  /**
   * Define (persist, not start) a domain from a Stratus-level spec. If a domain with that name exists
   * its persistent definition is replaced (it keeps its hypervisor identity); a running domain keeps
   * running on its old definition until its next start. Idempotent.
   */
  defineDomain(spec: DomainSpec): Promise<void>;

  /** Start a defined domain. No-op if it is already running. Absent: NotFound LibvirtError. */
  startDomain(name: string): Promise<void>;

  /**
   * Graceful shutdown: ask the guest to power off (ACPI) and wait up to `timeoutMs` (default 60000)
   * for the domain to be shut off. Resolves true if it is off by then, false if the guest did not
   * comply (the caller may then `destroyDomain`). True at once if it is already off.
   * Absent: NotFound LibvirtError.
   */
  stopDomain(name: string, opts?: { timeoutMs?: number }): Promise<boolean>;

  /** Hard power-off. No-op if the domain is already off or does not exist. The definition is kept. */
  destroyDomain(name: string): Promise<void>;

  /**
   * Remove a domain so that nothing of it is left: a running domain is destroyed first, then its
   * definition (with managed-save images and snapshot/checkpoint metadata) is removed. Disk images are
   * NOT deleted (they are volumes: `deleteVolume`). No-op if the domain does not exist.
   */
  undefineDomain(name: string): Promise<void>;

  /** The domain's state, or undefined if no domain has that name. Read-only. */
  domainState(name: string): Promise<DomainState | undefined>;

  /** Names of all domains, running or not, sorted. Read-only. */
  listDomains(): Promise<string[]>;

  /**
   * Usage counters of the named domains (all domains when `names` is omitted), read in one bulk call
   * (virConnectGetAllDomainStats) plus, only for domains whose driver left CPU time or memory out of
   * the bulk record, one virDomainGetInfo each. Domains that do not exist are absent from the result
   * (no error). Read-only.
   */
  domainStats(names?: readonly string[]): Promise<DomainStats[]>;

  /**
   * The domain's XML as libvirt has it: the live definition by default, the persistent one (used at
   * next start) with `{ inactive: true }`. For diagnostics and tests; it contains hypervisor ids, so
   * it must not be stored or returned to API users. Absent: NotFound LibvirtError.
   */
  domainXml(name: string, opts?: { inactive?: boolean }): Promise<string>;

  /** Disks of the live (default) or persistent (`inactive`) definition. Absent: NotFound LibvirtError. */
  domainDisks(name: string, opts?: { inactive?: boolean }): Promise<DomainDisk[]>;

  /**
   * Ask the guest to reboot (ACPI). Returns once the request is delivered, not when the guest is back.
   * The domain must be running (else LibvirtError VIR_ERR_OPERATION_INVALID). Absent: NotFound.
   */
  rebootDomain(name: string): Promise<void>;

  // ---------------------------------------------------------------- storage

  /**
   * Make sure a storage pool exists and is active, and return its facts. An existing pool (e.g. the
   * test driver's 'default-pool') is started if inactive and otherwise left as it is, whatever its
   * path. An absent pool is created as a directory pool at `targetPath` (directory built, pool
   * started, autostart on); without `targetPath` an absent pool is a NotFound LibvirtError.
   * Idempotent. Also refreshes the pool so volumes created outside libvirt become visible.
   */
  ensurePool(name: string, targetPath?: string): Promise<PoolInfo>;

  /**
   * Create an empty volume (sparse where the pool allows). If a volume of that name already exists
   * with the same format, no backing store and at least `capacityBytes` (formats may round sizes up),
   * it is returned as is (idempotent); otherwise LibvirtError VIR_ERR_STORAGE_VOL_EXIST.
   * Absent pool: NotFound.
   */
  createVolume(pool: string, spec: VolumeSpec): Promise<VolumeInfo>;

  /**
   * Create a qcow2 volume whose `<backingStore>` is `backingPath` (copy-on-write: reads fall through to
   * the backing image, writes stay in the overlay). Same existence rules as `createVolume` (an existing
   * volume must also have the same backing path).
   */
  createOverlayVolume(pool: string, spec: OverlayVolumeSpec): Promise<VolumeInfo>;

  /** Delete a volume and its data. No-op if it does not exist; an absent pool is NotFound. */
  deleteVolume(pool: string, name: string): Promise<void>;

  /** All volumes of a pool, sorted by name. Read-only. */
  listVolumes(pool: string): Promise<VolumeInfo[]>;

  /** Host path of a volume. Absent volume or pool: NotFound LibvirtError. Read-only. */
  volumePath(pool: string, name: string): Promise<string>;

  /** Facts of one volume (format, capacity, backing store). Absent: NotFound LibvirtError. */
  volumeInfo(pool: string, name: string): Promise<VolumeInfo>;

  // ---------------------------------------------------------------- networks

  /**
   * Define (persist, not start) a network: a bridge with an IPv4 address, NAT or isolated, DHCP range
   * and fixed MAC->IP reservations. An existing network of that name gets its persistent definition
   * replaced (a running one keeps its old configuration until restarted). Idempotent.
   */
  defineNetwork(spec: NetworkSpec): Promise<void>;

  /** Start a defined network (bridge, dnsmasq, NAT rules). No-op if active. Absent: NotFound. */
  startNetwork(name: string): Promise<void>;

  /** Stop a network (guests on it lose connectivity). No-op if inactive or absent. */
  destroyNetwork(name: string): Promise<void>;

  /** Remove a network, stopping it first if active. No-op if absent. */
  undefineNetwork(name: string): Promise<void>;

  /** Names of all networks, active or not, sorted. Read-only. */
  listNetworks(): Promise<string[]>;

  /** DHCP reservations of a network's persistent definition. Absent: NotFound. Read-only. */
  networkDhcpHosts(name: string): Promise<DhcpHost[]>;

  /**
   * Reserve `ip` for `mac` in the network's DHCP server, live (if active) and persistently (see
   * `capabilities.liveDhcpHostUpdate`). No-op if the same MAC already has the same IP; if the MAC has
   * another IP the entry is replaced. An IP reserved for another MAC: LibvirtError from libvirt.
   * Absent network: NotFound.
   */
  networkAddDhcpHost(network: string, host: DhcpHost): Promise<void>;

  /** Remove the reservation of `mac`. No-op if there is none. Absent network: NotFound. */
  networkRemoveDhcpHost(network: string, mac: string): Promise<void>;

  // ---------------------------------------------------------------- disks

  /**
   * Attach a disk, identified by its serial, to a domain: live and persistently when the domain is
   * running and `capabilities.hotplugDisks`; persistently only otherwise (a running domain on a driver
   * without hotplug sees it after its next start). No-op if a disk with that serial and path is
   * already in the definition(s) concerned; a serial already used with another path, or a target
   * already in use: LibvirtError VIR_ERR_OPERATION_INVALID. Absent domain: NotFound.
   */
  attachDisk(domain: string, disk: DiskSpec): Promise<void>;

  /**
   * Detach the disk with this serial from the live definition (if present there and hotplug is
   * supported) and from the persistent definition. No-op if no disk has that serial. A live detach
   * needs the guest's cooperation; libvirt reports success once the device is gone or the request is
   * queued. Absent domain: NotFound.
   */
  detachDisk(domain: string, serial: string): Promise<void>;

  /**
   * Close the hypervisor connection(s) after in-flight calls finish. Later calls reject. Idempotent.
   */
  close(): Promise<void>;
}
