/**
 * Cinder's operations as workflows: create and delete a volume in a host's storage pool, attach it
 * to and detach it from a server. The API moved the volume into the transitional state (creating,
 * deleting, reserved, detaching) before starting each; the workflow finishes or rolls back the move.
 * The rollback always finishes (non-cancellable): an undo on a host that cannot run it now goes to the
 * ledger of leftovers, and the volume still reaches its end state.
 */
import type { ImageForHost } from '../activities/compute/types';
import { domainNameFor } from '../activities/compute/types';
import { poolVolumeFor, serialFor } from '../activities/storage/types';
import { conductor, onHost } from './activity-proxies';
import { finishing, OperationTracker, operationFailure } from './progress';

export function volumeWorkflowId(volumeId: string, kind: string, operationId: string): string {
  return `volume:${volumeId}:${kind}:${operationId}`;
}

export async function createVolume(input: {
  volumeId: string;
  projectId: string;
  operationId: string;
  sizeGb: number;
  imageId?: string;
}): Promise<void> {
  const { volumeId } = input;
  const t = new OperationTracker(['select_image', 'schedule', 'create'], { operationId: input.operationId, resourceType: 'volume', resourceId: volumeId });
  let host: string | undefined;
  try {
    let image: ImageForHost | undefined;
    if (input.imageId) {
      const imageId = input.imageId;
      image = await t.run('select_image', () =>
        conductor.selectImage({ imageId, projectId: input.projectId, flavor: { vcpus: 1, ramMb: Number.MAX_SAFE_INTEGER, diskGb: input.sizeGb } }),
      );
    }
    const onThatHost = await t.run('schedule', () => conductor.pickVolumeHost({ volumeId, sizeGb: input.sizeGb }));
    host = onThatHost;
    await t.run(
      'create',
      () => onHost(onThatHost).createVolume({ volumeId, poolVolume: poolVolumeFor(volumeId), sizeGb: input.sizeGb, ...(image ? { image } : {}) }),
      onThatHost,
    );
    await conductor.transitionVolume({ volumeId, from: ['creating'], to: 'available' });
    await conductor.finishOperation({ operationId: input.operationId, status: 'succeeded' });
    t.succeed();
  } catch (err) {
    const fault = t.failed(err);
    if (host) await t.attempt('create', { activity: 'deleteVolume', host, args: [{ poolVolume: poolVolumeFor(volumeId) }] });
    await finishing(async () => {
      await conductor.transitionVolume({ volumeId, from: ['creating'], to: 'error' });
      await conductor.finishOperation({ operationId: input.operationId, status: 'failed', error: fault });
    });
    throw operationFailure(fault);
  }
}

export async function deleteVolume(input: { volumeId: string; operationId: string; host: string | null }): Promise<void> {
  const t = new OperationTracker(['delete'], { operationId: input.operationId, resourceType: 'volume', resourceId: input.volumeId });
  try {
    const host = input.host;
    await t.run(
      'delete',
      async () => {
        if (host) await onHost(host).deleteVolume({ poolVolume: poolVolumeFor(input.volumeId) });
      },
      host ?? undefined,
    );
    await conductor.transitionVolume({ volumeId: input.volumeId, from: ['deleting'], to: 'deleted' });
    await conductor.finishOperation({ operationId: input.operationId, status: 'succeeded' });
    t.succeed();
  } catch (err) {
    const fault = t.failed(err);
    await finishing(async () => {
      await conductor.transitionVolume({ volumeId: input.volumeId, from: ['deleting'], to: 'error' });
      await conductor.finishOperation({ operationId: input.operationId, status: 'failed', error: fault });
    });
    throw operationFailure(fault);
  }
}

export async function attachVolume(input: {
  volumeId: string;
  serverId: string;
  host: string;
  device: string;
  operationId: string;
}): Promise<void> {
  const { volumeId, serverId } = input;
  const t = new OperationTracker(['attach'], { operationId: input.operationId, resourceType: 'volume', resourceId: volumeId });
  try {
    await t.run(
      'attach',
      () =>
        onHost(input.host).attachVolume({
          domainName: domainNameFor(serverId),
          poolVolume: poolVolumeFor(volumeId),
          serial: serialFor(volumeId),
          target: input.device,
        }),
      input.host,
    );
    await conductor.transitionVolume({ volumeId, from: ['reserved'], to: 'in-use', set: { serverId, device: input.device } });
    await conductor.finishOperation({ operationId: input.operationId, status: 'succeeded' });
    t.succeed();
  } catch (err) {
    const fault = t.failed(err);
    await t.attempt('attach', { activity: 'detachVolume', host: input.host, args: [{ domainName: domainNameFor(serverId), serial: serialFor(volumeId) }] });
    await finishing(async () => {
      await conductor.transitionVolume({ volumeId, from: ['reserved'], to: 'available', set: { serverId: null, device: null } });
      await conductor.finishOperation({ operationId: input.operationId, status: 'failed', error: fault });
    });
    throw operationFailure(fault);
  }
}

export async function detachVolume(input: { volumeId: string; serverId: string; host: string; operationId: string }): Promise<void> {
  const { volumeId, serverId } = input;
  const t = new OperationTracker(['detach'], { operationId: input.operationId, resourceType: 'volume', resourceId: volumeId });
  try {
    await t.run('detach', () => onHost(input.host).detachVolume({ domainName: domainNameFor(serverId), serial: serialFor(volumeId) }), input.host);
    await conductor.transitionVolume({ volumeId, from: ['detaching'], to: 'available', set: { serverId: null, device: null } });
    await conductor.finishOperation({ operationId: input.operationId, status: 'succeeded' });
    t.succeed();
  } catch (err) {
    const fault = t.failed(err);
    await finishing(async () => {
      await conductor.transitionVolume({ volumeId, from: ['detaching'], to: 'in-use' });
      await conductor.finishOperation({ operationId: input.operationId, status: 'failed', error: fault });
    });
    throw operationFailure(fault);
  }
}
