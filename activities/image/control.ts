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

export function createImageControlActivities({ db, signer, apiBaseUrl, urlTtlSeconds = 3600 }: ImageControlDeps) {
  return {
    /** The image as the host needs it, with a signed download URL; non-retryable ApplicationFailure when unusable. */
    async selectImage(selection: ImageSelection): Promise<ImageForHost> {
      const check = await checkImageForFlavor(db, selection);
      if (!check.ok) throw ApplicationFailure.nonRetryable(check.message, check.reason);
      const { image } = check;
      return {
        id: image.id,
        checksum: image.checksumSha256,
        sizeBytes: image.sizeBytes,
        diskFormat: image.diskFormat,
        downloadUrl: signer.signedImageUrl(apiBaseUrl, image.id, urlTtlSeconds),
      };
    },
  };
}

export type ImageControlActivities = ReturnType<typeof createImageControlActivities>;
