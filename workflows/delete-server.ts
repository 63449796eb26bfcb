/**
 * Server deletion: the create flow's undo, with the same care. Every step is idempotent, so a retried
 * or re-run delete finishes the job: domain and root disk off the host, volumes detached (deleted when
 * delete_on_termination), ports released, host claim released, metering stopped, server DELETED.
 */
import { domainNameFor } from '../activities/compute/types';
import { cleanupOnHost, conductor, serverFailed } from './activity-proxies';
import { OperationTracker } from './progress';

export const DELETE_STEPS = ['teardown', 'detach_volumes', 'release_ports', 'release_claim', 'stop_metering'] as const;

export function deleteServerWorkflowId(serverId: string): string {
  return `server:${serverId}:delete`;
}

export async function deleteServer(input: { serverId: string; operationId: string }): Promise<void> {
  const { serverId } = input;
  const t = new OperationTracker(DELETE_STEPS, input.operationId);
  try {
    const server = await conductor.setServerState({ serverId, taskState: 'deleting' });
    const ports = await conductor.portsOfServer({ serverId });
    const host = server.host;

    await t.run('teardown', async () => {
      if (host) await cleanupOnHost(host).destroyServer({ serverId, domainName: domainNameFor(serverId), ports });
    });
    await t.run('detach_volumes', async () => {
      const released = await conductor.releaseServerVolumes({ serverId, onTermination: true });
      if (host) for (const poolVolume of released.deletePoolVolumes) await cleanupOnHost(host).deleteVolume({ poolVolume });
      await conductor.forgetDeletedVolumes({ volumeIds: released.deletedVolumeIds });
    });
    await t.run('release_ports', () => conductor.releasePorts({ serverId }));
    await t.run('release_claim', () => conductor.releaseClaim({ serverId }));
    await t.run('stop_metering', () => conductor.stopMetering({ serverId }));
    await conductor.finishServerOperation({ server: { serverId, status: 'DELETED', taskState: null }, operationId: input.operationId, status: 'succeeded' });
    t.succeed();
  } catch (err) {
    const fault = t.failed(err);
    throw await serverFailed(serverId, input.operationId, fault);
  }
}
