/**
 * Image activities that run on the conductor (they read the database): select the image a new server
 * boots from, by the rules of services/images.ts (which the API checks too, before a workflow starts);
 * a rejection is a non-retryable ApplicationFailure whose type names it ('ImageNotFound' |
 * 'ImageNotActive' | 'ImageTooLarge' | 'FlavorTooSmall').
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Knex } from 'knex';
import * as images from '../../db/repositories/images';
import type { ImageUrlSigner } from '../../images/signed-url';
import { checkImageForFlavor, type ImageSelection } from '../../services/images';
import type { ImageForHost } from '../compute/types';

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
