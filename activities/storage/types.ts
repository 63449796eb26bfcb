/** Contracts of the storage activities (Cinder's job). */

export interface HostVolumeCreate {
  volumeId: string;
  /** Name in the host's storage pool: `volume-<volumeId>`. */
  poolVolume: string;
  sizeGb: number;
  /** Create from an image: the volume starts with the image's content. */
  image?: import('../compute/types').ImageForHost;
}

/** Host agent side; every method idempotent. */
export interface StorageHostActivitiesContract {
  /** Create the volume in the pool (no-op if it exists); returns its path. */
  createVolume(req: HostVolumeCreate): Promise<{ path: string }>;
  /** Delete the pool volume; absent is fine. */
  deleteVolume(req: { poolVolume: string }): Promise<void>;
  /** Plug the pool volume into the domain as a disk with `serial` (live when the driver can,
   * else into the persistent definition). Already attached (same serial) is fine. */
  attachVolume(req: { domainName: string; poolVolume: string; serial: string; target: string }): Promise<void>;
  /** Unplug the disk with `serial`; not attached is fine. */
  detachVolume(req: { domainName: string; serial: string }): Promise<void>;
}

export function poolVolumeFor(volumeId: string): string {
  return `volume-${volumeId}`;
}

/** Disk serials are ≤ 20 chars: the volume id without dashes, cut to 20. */
export function serialFor(volumeId: string): string {
  return volumeId.replace(/-/g, '').slice(0, 20);
}
