/**
 * Contracts of the compute activities: what workflows send and get back. Workflows import these
 * by type only; the factories in control.ts (conductor) and host.ts (host agent) implement them.
 */
import type { HostNetwork } from '../network/types';

export interface Flavor {
  id: string;
  name: string;
  vcpus: number;
  ramMb: number;
  diskGb: number;
}

/** The image as a host needs it: where to pull it from and how to verify it. */
export interface ImageForHost {
  id: string;
  /** sha256 hex of the bytes; also the cache key on the host. */
  checksum: string;
  sizeBytes: number;
  diskFormat: 'raw' | 'qcow2';
  /** A signed, expiring URL of the API that streams the bytes (no token needed). */
  downloadUrl: string;
}

/** A port as the host realizes it: the NIC's MAC, its reserved address, and the network it plugs into. */
export interface PortOnHost {
  portId: string;
  mac: string;
  ip: string;
  network: HostNetwork;
}

/** A volume disk to plug into a domain. */
export interface VolumeOnHost {
  volumeId: string;
  /** Name of the volume in the host's storage pool. */
  poolVolume: string;
  /** What the guest sees as the disk serial (≤ 20 chars): how a guest identifies the volume. */
  serial: string;
  /** Target device hint, e.g. vdb; the guest may name it otherwise. */
  target: string;
}

export interface BootRequest {
  serverId: string;
  /** libvirt domain name: `stratus-<serverId>`. */
  domainName: string;
  vcpus: number;
  ramMb: number;
  rootDiskGb: number;
  image: ImageForHost;
  /**
   * Direct kernel boot (Glance's kernel_id / ramdisk_id image properties): the kernel and initramfs
   * are images too, cached on the host like the root image; `cmdline` is the kernel command line.
   */
  kernel?: ImageForHost;
  initrd?: ImageForHost;
  cmdline?: string;
  ports: PortOnHost[];
  volumes: VolumeOnHost[];
}

export interface BootResult {
  domainName: string;
  /** Pool volume name and path of the root disk (a qcow2 overlay on the cached image). */
  rootVolume: string;
  rootDiskPath: string;
  /** The cached image file the overlay is backed by. */
  backingPath: string;
  consoleLogPath: string;
}

export interface TeardownRequest {
  serverId: string;
  domainName: string;
  ports: PortOnHost[];
}

export type PowerAction = 'start' | 'stop' | 'reboot';

/** Host agent side (task queue host.<name>). Every method is idempotent: safe to retry, safe to re-run. */
export interface ComputeHostActivitiesContract {
  /**
   * Pull the image into the host cache (verify sha256), create the root disk overlay in the pool,
   * realize each port's network (bridge + DHCP reservation), define the domain with root disk,
   * volumes and NICs, start it, and wait until libvirt reports it running.
   * A rerun after a partial run finishes the job; `destroyServer` undoes any part of it.
   */
  bootServer(req: BootRequest): Promise<BootResult>;
  /** Destroy and undefine the domain, delete its root disk, remove its DHCP reservations, and the
   * network itself when no domain on this host uses it any more. Absent pieces are skipped. */
  destroyServer(req: TeardownRequest): Promise<void>;
  powerAction(req: { domainName: string; action: PowerAction }): Promise<void>;
  /** The serial console log ('' when the driver keeps none, e.g. the test driver). */
  readConsole(req: { domainName: string; maxBytes?: number }): Promise<string>;
  /**
   * The serial console log from byte offset `since` on (the tail of at most `maxBytes` when `since`
   * is absent, past the end of the log, or more than `maxBytes` behind it), and the offset where the
   * next read goes on: a reader that follows the log fetches only what is new.
   */
  readConsoleChunk(req: ConsoleChunkRequest): Promise<ConsoleChunk>;
}

export interface ConsoleChunkRequest {
  domainName: string;
  maxBytes?: number;
  /** A byte offset that an earlier chunk's `end` returned. */
  since?: number;
}

export interface ConsoleChunk {
  /** Never starts or ends inside a UTF-8 character ('' when there is no log or nothing new). */
  output: string;
  /** The byte offset just past `output` in the log: the next read's `since`. */
  end: number;
}

export function domainNameFor(serverId: string): string {
  return `stratus-${serverId}`;
}
