/**
 * Image activities that run on the conductor (they read the database): select the image a new server
 * boots from. One implementation of the checks (`checkImageForFlavor`) with two thin adapters:
 * - `selectImage`, the workflow activity: a rejection is a non-retryable ApplicationFailure whose type
 *   names it ('ImageNotFound' | 'ImageNotActive' | 'ImageTooLarge' | 'FlavorTooSmall');
 * - `assertImageUsable`, for the API before it starts a workflow: NotFound / InvalidInput naming
 *   `body.image_id`, so a hopeless request is a 4xx at once instead of a server in ERROR.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Knex } from 'knex';
import { InvalidInput, NotFound } from '../../core/errors';
import * as images from '../../db/repositories/images';
import type { ImageUrlSigner } from '../../images/signed-url';
import type { ImageForHost } from '../compute/types';

export type ImageRejection = 'ImageNotFound' | 'ImageNotActive' | 'ImageTooLarge' | 'FlavorTooSmall';

export interface ImageSelection {
  imageId: string;
  /** The project the server is created in: the image must be its own, or public. */
  projectId: string;
  flavor: { vcpus: number; ramMb: number; diskGb: number };
}

export type ImageCheck =
  | { ok: true; image: images.Image & { sizeBytes: number; checksumSha256: string } }
  | { ok: false; reason: ImageRejection; message: string };

const GIB = 1024 ** 3;

/**
 * The image exists and the project may see it, it is active (its bytes are stored), and it fits the
 * flavor: min_disk_gb ≤ disk, min_ram_mb ≤ ram, and the stored size ≤ disk.
 */
export async function checkImageForFlavor(db: Knex, { imageId, projectId, flavor }: ImageSelection): Promise<ImageCheck> {
  const image = await images.getVisible(db, imageId, projectId);
  if (!image) return { ok: false, reason: 'ImageNotFound', message: `image ${imageId} not found` };
  if (image.status !== 'active' || image.sizeBytes === null || image.checksumSha256 === null) {
    return { ok: false, reason: 'ImageNotActive', message: `image ${imageId} is ${image.status}, not active: upload its data first` };
  }
  if (image.minDiskGb > flavor.diskGb || image.minRamMb > flavor.ramMb) {
    const needs = [
      image.minDiskGb > flavor.diskGb ? `${image.minDiskGb} GB of disk (the flavor has ${flavor.diskGb})` : undefined,
      image.minRamMb > flavor.ramMb ? `${image.minRamMb} MB of RAM (the flavor has ${flavor.ramMb})` : undefined,
    ].filter(Boolean);
    return { ok: false, reason: 'FlavorTooSmall', message: `image ${imageId} needs ${needs.join(' and ')}` };
  }
  if (image.sizeBytes > flavor.diskGb * GIB) {
    return {
      ok: false,
      reason: 'ImageTooLarge',
      message: `image ${imageId} is ${image.sizeBytes} bytes, more than the flavor's ${flavor.diskGb} GB disk`,
    };
  }
  return { ok: true, image: { ...image, sizeBytes: image.sizeBytes, checksumSha256: image.checksumSha256 } };
}

/** The API's adapter: the usable image, or NotFound / InvalidInput naming `body.image_id`. */
export async function assertImageUsable(db: Knex, selection: ImageSelection): Promise<images.Image> {
  const check = await checkImageForFlavor(db, selection);
  if (check.ok) return check.image;
  const fields = [{ field: 'body.image_id', message: check.message }];
  throw check.reason === 'ImageNotFound' ? new NotFound(check.message, fields) : new InvalidInput(check.message, fields);
}

export interface ImageControlDeps {
  db: Knex;
  signer: ImageUrlSigner;
  /** The API's base URL as host agents reach it (STRATUS_PUBLIC_URL). */
  apiBaseUrl: string;
  /** Lifetime of the download URL handed to the host (default 3600 s). */
  urlTtlSeconds?: number;
}

/** The root image as a host needs it, plus the kernel and initramfs it names for direct kernel boot. */
export interface SelectedImage extends ImageForHost {
  kernel?: ImageForHost;
  initrd?: ImageForHost;
  cmdline?: string;
}

/**
 * Glance's image properties for direct kernel boot: `kernel_id` and `ramdisk_id` name other images
 * (visible to the project, active), `os_command_line` the kernel command line.
 */
export const BOOT_PROPERTIES = { kernel: 'kernel_id', initrd: 'ramdisk_id', cmdline: 'os_command_line' } as const;

export function createImageControlActivities({ db, signer, apiBaseUrl, urlTtlSeconds = 3600 }: ImageControlDeps) {
  const forHost = (image: { id: string; checksumSha256: string; sizeBytes: number; diskFormat: images.Image['diskFormat'] }): ImageForHost => ({
    id: image.id,
    checksum: image.checksumSha256,
    sizeBytes: image.sizeBytes,
    diskFormat: image.diskFormat,
    downloadUrl: signer.signedImageUrl(apiBaseUrl, image.id, urlTtlSeconds),
  });

  /** A kernel or initramfs image named by a property: it must exist, be visible and active. */
  async function bootFile(imageId: string, projectId: string, property: string): Promise<ImageForHost> {
    const file = await images.getVisible(db, imageId, projectId);
    if (!file || file.status !== 'active' || file.sizeBytes === null || file.checksumSha256 === null) {
      throw ApplicationFailure.nonRetryable(`image property ${property} names image ${imageId}, which is missing or not active`, 'ImageNotActive');
    }
    return forHost({ ...file, sizeBytes: file.sizeBytes, checksumSha256: file.checksumSha256 });
  }

  return {
    /** The image as the host needs it, with signed download URLs; non-retryable ApplicationFailure when unusable. */
    async selectImage(selection: ImageSelection): Promise<SelectedImage> {
      const check = await checkImageForFlavor(db, selection);
      if (!check.ok) throw ApplicationFailure.nonRetryable(check.message, check.reason);
      const { image } = check;
      const props = image.properties;
      const kernelId = props[BOOT_PROPERTIES.kernel];
      const initrdId = props[BOOT_PROPERTIES.initrd];
      const cmdline = props[BOOT_PROPERTIES.cmdline];
      return {
        ...forHost(image),
        ...(kernelId ? { kernel: await bootFile(kernelId, selection.projectId, BOOT_PROPERTIES.kernel) } : {}),
        ...(initrdId ? { initrd: await bootFile(initrdId, selection.projectId, BOOT_PROPERTIES.initrd) } : {}),
        ...(cmdline ? { cmdline } : {}),
      };
    },
  };
}

export type ImageControlActivities = ReturnType<typeof createImageControlActivities>;
