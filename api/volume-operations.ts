/**
 * The volume operations both APIs start (`/v1/volumes` and Cinder's `/volume/v3`): the service's
 * state change first, then the operation and its workflow; when the workflow cannot start, the state
 * change is undone (a create's row and quota released, a delete's claim given back).
 */
import type { AuthContext } from '../services/identity';
import type { Volume, VolumeService } from '../services/volumes';
import type { Operation } from '../db/repositories/operations';
import { OPERATIONS } from '../workflows/catalog';
import { startOperation, type OperationDeps } from './operations';

export async function createVolumeOperation(
  deps: OperationDeps,
  volumes: VolumeService,
  auth: AuthContext,
  input: { name: string; sizeGb: number; imageId?: string; availabilityZone?: string },
): Promise<{ volume: Volume; op: Operation }> {
  const volume = await volumes.create(auth, input);
  try {
    const op = await startOperation(deps, {
      def: OPERATIONS.volumeCreate,
      resourceId: volume.id,
      projectId: auth.project.id,
      input: (operationId) => ({ volumeId: volume.id, projectId: auth.project.id, operationId, sizeGb: input.sizeGb, ...(input.imageId ? { imageId: input.imageId } : {}) }),
    });
    return { volume, op };
  } catch (err) {
    await volumes.abandonCreate(volume.id);
    throw err;
  }
}

export async function deleteVolumeOperation(deps: OperationDeps, volumes: VolumeService, auth: AuthContext, id: string): Promise<Operation> {
  const volume = await volumes.claimDelete(auth, id);
  try {
    return await startOperation(deps, {
      def: OPERATIONS.volumeDelete,
      resourceId: volume.id,
      projectId: volume.projectId,
      input: (operationId) => ({ volumeId: volume.id, operationId, host: volume.host }),
    });
  } catch (err) {
    await volumes.releaseDelete(volume);
    throw err;
  }
}
