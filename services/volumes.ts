/**
 * Volumes (Cinder's rules) shared by the API and the conductor: device naming, reads through the
 * visibility rule, and the state changes the API makes before and after starting a workflow (each a
 * conditional update in db/repositories/volumes.ts, so of two racing requests one gets 409).
 */
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { Conflict, NotFound } from '../core/errors';
import * as images from '../db/repositories/images';
import * as quotas from '../db/repositories/quotas';
import * as volumes from '../db/repositories/volumes';
import type { Page, PageRequest } from '../db/types';
import type { AuthContext } from './identity';
import { volumeQuotaAmounts } from './quotas';
import { assertKnownZone } from './server-requests';
import { listScope, visibleOr404 } from './visibility';

export type Volume = volumes.Volume;
export type VolumeStatus = volumes.VolumeStatus;
export const VOLUME_STATUSES = volumes.VOLUME_STATUSES;

/** Disk targets after the root disk (vda): vdb, vdc, … */
export function deviceFor(index: number): string {
  return `vd${String.fromCharCode('b'.charCodeAt(0) + index)}`;
}

/** The first device name not in `used`. */
export function firstFreeDevice(used: Iterable<string | null>): string {
  const taken = new Set(used);
  let index = 0;
  while (taken.has(deviceFor(index))) index += 1;
  return deviceFor(index);
}

export function createVolumeService(db: Knex, quotaDefaults: quotas.QuotaLimits) {
  /** The caller's volume, or 404 (deleted volumes and other projects' do not exist for them). */
  async function get(auth: AuthContext, id: string): Promise<Volume> {
    return visibleOr404(auth, await volumes.get(db, id), { kind: 'volume', id, gone: (v) => v.status === 'deleted' });
  }

  return {
    get,

    /**
     * The volumes `auth` may see, narrowed by `filters` (exact); a `projectId` other than the
     * caller's own lists nothing unless the caller is an admin.
     */
    async list(auth: AuthContext, page: PageRequest, filters: Omit<volumes.VolumeFilters, 'serverId'> = {}): Promise<Page<Volume>> {
      const scope = listScope(auth);
      if (scope.projectId !== undefined && filters.projectId !== undefined && filters.projectId !== scope.projectId) return { items: [], next: null };
      return volumes.list(db, { ...page, ...filters, ...scope });
    },

    /**
     * A new volume row (creating), after checking its zone exists (400) and its image is visible and
     * active (404 naming body.image_id); quota first (403 naming the resource, nothing created), then
     * the record, in one transaction.
     */
    async create(auth: AuthContext, input: { name: string; sizeGb: number; imageId?: string; availabilityZone?: string }): Promise<Volume> {
      await assertKnownZone(db, input.availabilityZone, 'body.availability_zone');
      if (input.imageId) {
        const image = await images.getVisible(db, input.imageId, auth.project.id);
        if (!image || image.status !== 'active') {
          throw new NotFound(`image ${input.imageId} not found or not active`, [{ field: 'body.image_id', message: 'no such active image' }]);
        }
      }
      const id = randomUUID();
      return db.transaction(async (trx) => {
        await quotas.reserve(trx, { projectId: auth.project.id, ownerId: id, amounts: volumeQuotaAmounts(input.sizeGb), defaults: quotaDefaults });
        return volumes.create(trx, {
          id,
          projectId: auth.project.id,
          name: input.name,
          sizeGb: input.sizeGb,
          ...(input.imageId ? { imageId: input.imageId } : {}),
          status: 'creating',
          availabilityZone: input.availabilityZone ?? null,
        });
      });
    },

    /** Undoes `create` when its workflow could not start. */
    async abandonCreate(id: string): Promise<void> {
      await volumes.remove(db, id).catch(() => undefined);
      await quotas.release(db, id).catch(() => undefined);
    },

    /** Claims the caller's volume for deletion (available or error → deleting); 404 or 409. */
    async claimDelete(auth: AuthContext, id: string): Promise<Volume> {
      const volume = await get(auth, id);
      if (volume.status !== 'available' && volume.status !== 'error') {
        throw new Conflict(`volume ${volume.id} is ${volume.status}: only available or error volumes can be deleted`);
      }
      await volumes.transition(db, volume.id, { from: ['available', 'error'], to: 'deleting' });
      return volume;
    },

    /** Undoes `claimDelete` when the delete workflow could not start. */
    async releaseDelete(volume: Volume): Promise<void> {
      await volumes.transition(db, volume.id, { from: ['deleting'], to: volume.status });
    },
  };
}

export type VolumeService = ReturnType<typeof createVolumeService>;
