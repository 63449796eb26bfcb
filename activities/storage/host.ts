/**
 * Storage activities that run on a hypervisor host (cinder-volume's job): volumes are files in the
 * host's libvirt storage pool, plugged into domains as disks identified by serial. No database:
 * everything arrives as input. Every activity checks the state first and is idempotent.
 *
 * Also the disk helpers the compute host activities share: `createImageOverlay` (a qcow2 overlay on
 * a cached image, used for root disks and volumes created from an image) and `volumeDisk`.
 */
import { open } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from '../../core/log';
import type { DiskSpec, Hypervisor, VolumeInfo } from '../../libvirt';
import type { ImageForHost } from '../compute/types';
import { asActivity } from '../fault-injection';
import { isNotFound } from '../network/host';
import type { HostVolumeCreate, StorageHostActivitiesContract } from './types';

export const GiB = 1024 ** 3;

/** Pulls an image into the host cache (verifying its checksum) and returns the cached file. */
export type EnsureImageCached = (image: ImageForHost) => Promise<{ path: string }>;

const QCOW2_MAGIC = 0x514649fb; // 'QFI\xfb'

/**
 * The virtual size (what a guest sees) of an image file: for qcow2 the size in its header, for raw
 * the file size.
 */
export async function imageVirtualSizeBytes(file: string, format: 'raw' | 'qcow2'): Promise<number> {
  const fh = await open(file, 'r');
  try {
    if (format === 'raw') return (await fh.stat()).size;
    const header = Buffer.alloc(32);
    const { bytesRead } = await fh.read(header, 0, 32, 0);
    if (bytesRead < 32 || header.readUInt32BE(0) !== QCOW2_MAGIC) {
      throw ApplicationFailure.nonRetryable(`cached image ${file} is not a qcow2 file`, 'ImageCorrupt');
    }
    return Number(header.readBigUInt64BE(24));
  } finally {
    await fh.close();
  }
}

/** Round up to a multiple of 512 bytes (image formats and block devices count in sectors). */
const sectors = (bytes: number): number => Math.ceil(bytes / 512) * 512;

/**
 * A qcow2 pool volume backed by the cached image (copy-on-write; the cache file is never written),
 * of virtual size max(minBytes, the image's virtual size). Idempotent: an existing volume of that
 * name with that backing file is returned as is.
 */
export async function createImageOverlay(
  hypervisor: Hypervisor,
  pool: string,
  req: { name: string; cachedPath: string; diskFormat: 'raw' | 'qcow2'; minBytes: number },
): Promise<VolumeInfo> {
  const virtual = await imageVirtualSizeBytes(req.cachedPath, req.diskFormat);
  return hypervisor.createOverlayVolume(pool, {
    name: req.name,
    backingPath: req.cachedPath,
    backingFormat: req.diskFormat,
    capacityBytes: sectors(Math.max(req.minBytes, virtual, 1)),
  });
}

/** The pool volume as a disk spec for a domain (path and format from the pool). Absent: NotFound LibvirtError. */
export async function volumeDisk(
  hypervisor: Hypervisor,
  pool: string,
  v: { poolVolume: string; serial: string; target: string },
): Promise<DiskSpec> {
  const info = await hypervisor.volumeInfo(pool, v.poolVolume);
  if (info.format !== 'raw' && info.format !== 'qcow2') {
    throw ApplicationFailure.nonRetryable(`volume ${v.poolVolume} has format '${info.format}'; raw or qcow2 expected`, 'HypervisorRejected');
  }
  return { path: info.path, format: info.format, target: v.target, serial: v.serial };
}

/** The volume's facts, or undefined if the pool has no volume of that name. */
export async function findVolume(hypervisor: Hypervisor, pool: string, name: string): Promise<VolumeInfo | undefined> {
  try {
    return await hypervisor.volumeInfo(pool, name);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export interface StorageHostDeps {
  hypervisor: Hypervisor;
  /** The libvirt storage pool volumes live in. */
  storagePool: string;
  ensureImageCached: EnsureImageCached;
  log: Logger;
}

export function createStorageHostActivities({ hypervisor, storagePool, ensureImageCached, log }: StorageHostDeps) {
  const activities = {
    /**
     * A raw volume of sizeGb, or with `image`, a qcow2 overlay on the cached image of
     * max(sizeGb, image) bytes. An existing volume that fits the request is kept (no image pull).
     */
    createVolume: (req: HostVolumeCreate): Promise<{ path: string }> =>
      asActivity(async () => {
        const sizeBytes = req.sizeGb * GiB;
        const existing = await findVolume(hypervisor, storagePool, req.poolVolume);
        if (existing && existing.capacityBytes >= sizeBytes) {
          const fits = req.image ? existing.format === 'qcow2' && existing.backingPath !== undefined : existing.format === 'raw' && !existing.backingPath;
          if (fits) return { path: existing.path };
        }
        // absent, or present but different: the driver creates it or refuses (STORAGE_VOL_EXIST → HypervisorRejected)
        if (req.image) {
          const cached = await ensureImageCached(req.image);
          const info = await createImageOverlay(hypervisor, storagePool, {
            name: req.poolVolume,
            cachedPath: cached.path,
            diskFormat: req.image.diskFormat,
            minBytes: sizeBytes,
          });
          log.info({ volume: req.poolVolume, image: req.image.id, capacityBytes: info.capacityBytes }, 'volume created from image');
          return { path: info.path };
        }
        const info = await hypervisor.createVolume(storagePool, { name: req.poolVolume, capacityBytes: Math.max(sizeBytes, 512), format: 'raw' });
        log.info({ volume: req.poolVolume, capacityBytes: info.capacityBytes }, 'volume created');
        return { path: info.path };
      }),

    /** Delete the pool volume; absent is fine. (The control plane refuses to delete in-use volumes.) */
    deleteVolume: (req: { poolVolume: string }): Promise<void> =>
      asActivity(async () => {
        await hypervisor.deleteVolume(storagePool, req.poolVolume);
      }),

    /**
     * Plug the volume into the domain as a disk with `serial` at `target` (live when the driver can
     * hotplug, else into the persistent definition: seen at the next start). Already attached with
     * that serial and path: no-op. Absent domain or volume: non-retryable NotFound.
     */
    attachVolume: (req: { domainName: string; poolVolume: string; serial: string; target: string }): Promise<void> =>
      asActivity(async () => {
        let disk: DiskSpec;
        try {
          disk = await volumeDisk(hypervisor, storagePool, req);
        } catch (err) {
          if (isNotFound(err)) throw ApplicationFailure.nonRetryable(`volume ${req.poolVolume} is not in pool ${storagePool}`, 'NotFound');
          throw err;
        }
        let disks;
        try {
          disks = await hypervisor.domainDisks(req.domainName, { inactive: true });
        } catch (err) {
          if (isNotFound(err)) throw ApplicationFailure.nonRetryable(`domain ${req.domainName} does not exist`, 'NotFound');
          throw err;
        }
        const same = disks.find((d) => d.serial === req.serial && d.path === disk.path);
        const running = (await hypervisor.domainState(req.domainName)) === 'running';
        // persistent definition has it, and there is no live definition to update: done
        if (same && (!running || !hypervisor.capabilities.hotplugDisks)) return;
        await hypervisor.attachDisk(req.domainName, disk); // no-op where already present; conflicts → HypervisorRejected
        log.info({ domain: req.domainName, volume: req.poolVolume, serial: req.serial, live: running && hypervisor.capabilities.hotplugDisks }, 'volume attached');
      }),

    /** Unplug the disk with `serial` (live and persistent); not attached, or no such domain, is fine. */
    detachVolume: (req: { domainName: string; serial: string }): Promise<void> =>
      asActivity(async () => {
        try {
          await hypervisor.detachDisk(req.domainName, req.serial); // no-op if no disk has that serial
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }),
  } satisfies StorageHostActivitiesContract;
  return activities;
}

export type StorageHostActivities = ReturnType<typeof createStorageHostActivities>;
