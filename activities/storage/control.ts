/**
 * Storage activities on the conductor (Cinder's API/scheduler side): volume records and their state
 * machine (db/repositories/volumes.ts enforces each transition atomically), volumes for a server being
 * built, and where a new volume goes.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Knex } from 'knex';
import { Conflict, DomainError } from '../../core/errors';
import * as quotas from '../../db/repositories/quotas';
import * as volumes from '../../db/repositories/volumes';
import { explainRejections, schedule } from '../../services/scheduler';
import { DEFAULT_PLACEMENT, loadHostStates, schedulerConfig, type PlacementSettings } from '../compute/placement';
import { deviceFor } from '../../services/volumes';
import type { VolumeOnHost } from '../compute/types';
import { poolVolumeFor, serialFor, type HostVolumeCreate } from './types';

/** A volume for a new server: an existing one by id, or a new one of `sizeGb` (its id chosen by the workflow). */
export type ServerVolumeRequest =
  | { volumeId: string }
  | { newVolumeId: string; sizeGb: number; deleteOnTermination?: boolean };

function asFailure(err: unknown): never {
  if (err instanceof Conflict) throw ApplicationFailure.nonRetryable(err.message, 'VolumeNotAvailable');
  if (err instanceof DomainError) throw ApplicationFailure.nonRetryable(err.message, 'VolumeNotFound');
  throw err;
}

export function createStorageControlActivities(deps: { db: Knex; heartbeatSeconds: number; placement?: PlacementSettings }) {
  const { db, heartbeatSeconds } = deps;
  const placement = deps.placement ?? DEFAULT_PLACEMENT;
  return {
    /**
     * Reserves the existing volumes and records the new ones (status creating) on `host`, in one
     * transaction; returns how the boot step plugs them in and which ones the host must create.
     * Idempotent: a retry finds the rows it wrote.
     */
    async prepareServerVolumes(req: { serverId: string; projectId: string; host: string; requests: ServerVolumeRequest[] }): Promise<{
      volumes: VolumeOnHost[];
      toCreate: HostVolumeCreate[];
    }> {
      const toCreate: HostVolumeCreate[] = [];
      const plugged: VolumeOnHost[] = [];
      await db
        .transaction(async (trx) => {
          for (const [i, r] of req.requests.entries()) {
            const device = deviceFor(i);
            if ('volumeId' in r) {
              const current = await volumes.get(trx, r.volumeId);
              if (!(current?.serverId === req.serverId && current.status === 'reserved')) {
                await volumes.transition(trx, r.volumeId, { from: ['available'], to: 'reserved', set: { serverId: req.serverId, device } });
              }
              plugged.push({ volumeId: r.volumeId, poolVolume: poolVolumeFor(r.volumeId), serial: serialFor(r.volumeId), target: device });
            } else {
              const existing = await volumes.get(trx, r.newVolumeId);
              if (existing?.status === 'deleted') {
                // A reschedule: the previous host's attempt created and deleted this volume; it now
                // belongs to this host (without this, the retry created it here under a deleted row,
                // and no undo ever deleted it: found by the two-host tests).
                await volumes.transition(trx, r.newVolumeId, { from: ['deleted'], to: 'creating', set: { host: req.host, serverId: req.serverId, device } });
              } else if (!existing) {
                await volumes.create(trx, {
                  id: r.newVolumeId,
                  projectId: req.projectId,
                  name: `server-${req.serverId.slice(0, 8)}-${device}`,
                  sizeGb: r.sizeGb,
                  host: req.host,
                  serverId: req.serverId,
                  deleteOnTermination: r.deleteOnTermination ?? false,
                  status: 'creating',
                });
                await volumes.transition(trx, r.newVolumeId, { from: ['creating'], to: 'creating', set: { device } });
              }
              toCreate.push({ volumeId: r.newVolumeId, poolVolume: poolVolumeFor(r.newVolumeId), sizeGb: r.sizeGb });
              plugged.push({ volumeId: r.newVolumeId, poolVolume: poolVolumeFor(r.newVolumeId), serial: serialFor(r.newVolumeId), target: device });
            }
          }
        })
        .catch(asFailure);
      return { volumes: plugged, toCreate };
    },

    /** After boot: every volume of the server is in use. */
    async markServerVolumesInUse({ serverId }: { serverId: string }): Promise<void> {
      const { items } = await volumes.list(db, { limit: 1000, serverId });
      for (const v of items) {
        if (v.status === 'creating' || v.status === 'reserved') {
          await volumes.transition(db, v.id, { from: [v.status], to: 'in-use' });
        }
      }
    },

    /**
     * Lets go of the server's volumes: the ones in `deleteVolumeIds` (created by a failed request) or
     * marked delete_on_termination (when `onTermination`) go to `deleting`, and the host must delete
     * their pool volumes; the others go back to `available`.
     */
    async releaseServerVolumes(req: { serverId: string; deleteVolumeIds?: string[]; onTermination?: boolean }): Promise<{
      deletePoolVolumes: string[];
      deletedVolumeIds: string[];
    }> {
      const { items } = await volumes.list(db, { limit: 1000, serverId: req.serverId });
      const deleted: string[] = [];
      for (const v of items) {
        if (v.status === 'deleting' || v.status === 'deleted') {
          deleted.push(v.id);
          continue;
        }
        const doomed = (req.deleteVolumeIds ?? []).includes(v.id) || (req.onTermination === true && v.deleteOnTermination);
        if (doomed) {
          await volumes.transition(db, v.id, { from: [v.status], to: 'deleting' });
          deleted.push(v.id);
        } else {
          await volumes.transition(db, v.id, { from: [v.status], to: 'available', set: { serverId: null, device: null } });
        }
      }
      return { deletePoolVolumes: deleted.map(poolVolumeFor), deletedVolumeIds: deleted };
    },

    /** After the host deleted them: the volumes are gone. */
    async forgetDeletedVolumes({ volumeIds }: { volumeIds: string[] }): Promise<void> {
      for (const id of volumeIds) {
        await volumes.transition(db, id, { from: ['deleting'], to: 'deleted', set: { serverId: null, device: null } }).catch((err) => {
          if (!(err instanceof DomainError)) throw err; // already deleted: fine
        });
      }
    },

    /** The host the given existing volumes live on (all must share one), or null when there are none. */
    async hostOfVolumes({ volumeIds }: { volumeIds: string[] }): Promise<string | null> {
      const found = await Promise.all(volumeIds.map((id) => volumes.get(db, id)));
      const hostsOf = new Set(found.map((v) => v?.host ?? null));
      if (hostsOf.size > 1) throw ApplicationFailure.nonRetryable('the volumes live on different hosts', 'VolumesOnDifferentHosts');
      return found[0]?.host ?? null;
    },

    /**
     * Where a new volume goes: the scheduler's pick for its size (disk only) and availability zone;
     * records it on the volume. No host → NoValidHost naming every host and why.
     */
    async pickVolumeHost({ volumeId, sizeGb }: { volumeId: string; sizeGb: number }): Promise<string> {
      const now = Date.now();
      const [volume, states] = await Promise.all([volumes.get(db, volumeId), loadHostStates(db, placement, heartbeatSeconds, now)]);
      const request = { vcpus: 0, ramMb: 0, diskGb: sizeGb, availabilityZone: volume?.availabilityZone ?? null };
      const decision = schedule(states, request, { ...schedulerConfig(placement), ramWeigher: 'spread' }, now);
      const best = decision.host;
      if (!best) {
        throw ApplicationFailure.nonRetryable(
          `no valid host for a ${sizeGb} GiB volume${request.availabilityZone ? ` in zone ${request.availabilityZone}` : ''} — ${explainRejections(decision.rejected)}`,
          'NoValidHost',
          decision.rejected,
        );
      }
      await volumes.transition(db, volumeId, { from: ['creating'], to: 'creating', set: { host: best } });
      return best;
    },

    async transitionVolume(req: {
      volumeId: string;
      from: volumes.VolumeStatus[];
      to: volumes.VolumeStatus;
      set?: { serverId?: string | null; device?: string | null };
    }): Promise<void> {
      try {
        await db.transaction(async (trx) => {
          await volumes.transition(trx, req.volumeId, { from: req.from, to: req.to, ...(req.set ? { set: req.set } : {}) });
          // Quota: a created volume's reservation becomes usage; a failed create or a delete gives it back.
          if (req.to === 'available' && req.from.includes('creating')) await quotas.commit(trx, req.volumeId);
          if (req.to === 'deleted' || (req.to === 'error' && req.from.includes('creating'))) await quotas.release(trx, req.volumeId);
        });
      } catch (err) {
        // Idempotent under re-run: a transition that already happened (the first run's result was lost) is success.
        if (err instanceof Conflict && (await volumes.get(db, req.volumeId))?.status === req.to) return;
        throw err;
      }
    },
  };
}

export type StorageControlActivities = ReturnType<typeof createStorageControlActivities>;
