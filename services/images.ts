/**
 * Images (Glance's rules): which image a project may boot with a flavor. One implementation of the
 * checks (`checkImageForFlavor`) with two thin adapters:
 * - the conductor's `selectImage` activity (activities/image/control.ts): a rejection is a
 *   non-retryable ApplicationFailure whose type names it;
 * - `assertImageUsable`, for the API before it starts a workflow: NotFound / InvalidInput naming
 *   `body.image_id`, so a hopeless request is a 4xx at once instead of a server in ERROR.
 */
import type { Knex } from 'knex';
import { Forbidden, InvalidInput, NotFound } from '../core/errors';
import * as images from '../db/repositories/images';
import type { Page, PageRequest } from '../db/types';
import { hasRole, type AuthContext } from './identity';

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

export type Image = images.Image;
export type ImageChanges = images.ImageChanges;
export type ImageVisibility = images.ImageVisibility;
export type ImageFilters = images.ImageFilters;

/** Members and admins change images; readers only look. */
function requireImageWriter(auth: AuthContext): void {
  if (!hasRole(auth, 'admin', 'member')) throw new Forbidden('the reader role cannot change images');
}

function requireAdminForPublic(auth: AuthContext, visibility: ImageVisibility | undefined): void {
  if (visibility === 'public' && !hasRole(auth, 'admin')) {
    throw new Forbidden('only an admin may make an image public', [{ field: 'body.visibility', message: 'public needs the admin role' }]);
  }
}

/** The image catalog's rules: who sees an image (its project, everyone when public, admins), who changes it. */
export function createImageService(db: Knex) {
  /** The image as the caller may see it: its project's own or public (admins see every image). */
  async function get(auth: AuthContext, id: string): Promise<Image> {
    const image = await images.get(db, id);
    if (!image || (!hasRole(auth, 'admin') && !images.isVisibleTo(image, auth.project.id))) {
      throw new NotFound(`image ${id} not found`);
    }
    return image;
  }

  /** The image the caller may change: its project's own (admins: any), with a writer role. */
  async function own(auth: AuthContext, id: string): Promise<Image> {
    const image = await get(auth, id);
    if (image.projectId !== auth.project.id && !hasRole(auth, 'admin')) {
      throw new Forbidden(`image ${id} belongs to another project`);
    }
    requireImageWriter(auth);
    return image;
  }

  return {
    get,
    own,
    /** For a signed download URL: the image whatever its visibility (the signature stands in for the caller). */
    getBySignedUrl: (id: string) => images.get(db, id),
    list(auth: AuthContext, page: PageRequest & ImageFilters): Promise<Page<Image>> {
      return images.listVisible(db, { ...page, projectId: auth.project.id });
    },
    create(auth: AuthContext, input: Omit<images.NewImage, 'projectId'>): Promise<Image> {
      requireImageWriter(auth);
      requireAdminForPublic(auth, input.visibility);
      return images.create(db, { ...input, projectId: auth.project.id });
    },
    async update(auth: AuthContext, id: string, changes: ImageChanges): Promise<Image> {
      await own(auth, id);
      requireAdminForPublic(auth, changes.visibility);
      return images.update(db, id, changes);
    },
    async remove(auth: AuthContext, id: string): Promise<void> {
      await own(auth, id);
      await images.remove(db, id);
    },
    /** The upload's state machine (queued → saving → active, or back to queued): one conditional update each. */
    transition: (
      id: string,
      from: readonly images.ImageStatus[],
      to: images.ImageStatus,
      data?: { sizeBytes: number; checksumSha256: string; checksumMd5: string },
    ) =>
      images.transition(db, id, from, to, data),
  };
}
