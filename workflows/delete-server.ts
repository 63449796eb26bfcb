/**
 * Server deletion: the create flow's undo, with the same care. Every step is idempotent, so a retried
 * or re-run delete finishes the job: domain and root disk off the host, volumes detached (deleted when
 * delete_on_termination), ports released, host claim released, metering stopped, server DELETED.
 *
 * A host that cannot tear down now (down, or refusing) does not hold the delete: what is left on it
 * goes to the ledger of leftovers (the reconciler finishes it when the host answers again) and the
 * database side goes on to DELETED.
 *
 * Deleting a server in BUILD first cancels its create (whose compensation runs non-cancellable) and
 * waits for it to end. The reconciler also runs this flow, with `endAs`, to clean up after a create
 * whose run was terminated: the server then ends ERROR with that fault instead of DELETED.
 */
import { getExternalWorkflowHandle, sleep } from '@temporalio/workflow';
import { domainNameFor } from '../activities/compute/types';
import { conductor } from './activity-proxies';
import { createServerWorkflowId } from './create-server';
import { finishing, operationFailure, OperationTracker, serverFailed, type Fault } from './progress';

export const DELETE_STEPS = ['teardown', 'detach_volumes', 'release_ports', 'release_claim', 'stop_metering'] as const;

/** How long a delete waits for a cancelled create to finish its compensation. */
const CREATE_CANCEL_WAIT_MS = 5 * 60_000;

export function deleteServerWorkflowId(serverId: string): string {
  return `server:${serverId}:delete`;
}

export interface DeleteServerInput {
  serverId: string;
  operationId: string;
  /** The server is in BUILD: cancel its create first. */
  cancelCreate?: boolean;
  /** Clean up, but leave the server ERROR with this fault (and fail the operation) instead of DELETED. */
  endAs?: Fault;
}

export async function deleteServer(input: DeleteServerInput): Promise<void> {
  const { serverId } = input;
  const steps = input.cancelCreate ? ['cancel_create', ...DELETE_STEPS] : DELETE_STEPS;
  const t = new OperationTracker(steps, { operationId: input.operationId, resourceType: 'server', resourceId: serverId });
  try {
    if (input.cancelCreate) await t.run('cancel_create', () => cancelCreate(serverId));
    let server = await conductor.serverSnapshot({ serverId });
    if (server.status !== 'DELETED' && !input.endAs) server = await conductor.setServerState({ serverId, taskState: 'deleting' });
    const ports = await conductor.portsOfServer({ serverId });
    const host = server.host;

    await t.run('teardown', async () => {
      if (host) await t.attempt('teardown', { activity: 'destroyServer', host, args: [{ serverId, domainName: domainNameFor(serverId), ports }] });
    });
    await t.run('detach_volumes', async () => {
      const released = await conductor.releaseServerVolumes({ serverId, onTermination: true });
      if (host) for (const poolVolume of released.deletePoolVolumes) await t.attempt('detach_volumes', { activity: 'deleteVolume', host, args: [{ poolVolume }] });
      await conductor.forgetDeletedVolumes({ volumeIds: released.deletedVolumeIds });
    });
    await t.run('release_ports', () => conductor.releasePorts({ serverId }));
    await t.run('release_claim', () => conductor.releaseClaim({ serverId }));
    await t.run('stop_metering', () => conductor.stopMetering({ serverId }));
    if (input.endAs) {
      const fault = input.endAs;
      t.fail(fault);
      if (server.status === 'DELETED') await conductor.finishOperation({ operationId: input.operationId, status: 'failed', error: fault });
      else await conductor.finishServerOperation({ server: { serverId, status: 'ERROR', taskState: null, fault }, operationId: input.operationId, status: 'failed', error: fault });
      return;
    }
    await conductor.finishServerOperation({ server: { serverId, status: 'DELETED', taskState: null }, operationId: input.operationId, status: 'succeeded' });
    t.succeed();
  } catch (err) {
    const fault = t.failed(err);
    if (input.endAs) {
      await finishing(() => conductor.finishOperation({ operationId: input.operationId, status: 'failed', error: fault }));
      throw operationFailure(fault);
    }
    throw await serverFailed(serverId, input.operationId, fault);
  }
}

/** Cancels the server's create workflow and waits until it has undone its work (the server left BUILD). */
async function cancelCreate(serverId: string): Promise<void> {
  try {
    await getExternalWorkflowHandle(createServerWorkflowId(serverId)).cancel();
  } catch {
    // No such run (it never started: the reconciler must not start it now), or it has ended.
    const fault = { step: 'start', code: 'Cancelled', message: 'deleted before its workflow started' };
    await conductor.abandonUnstartedCreate({ serverId, fault });
    return;
  }
  for (let waited = 0; waited < CREATE_CANCEL_WAIT_MS; waited += 500) {
    if ((await conductor.serverSnapshot({ serverId })).status !== 'BUILD') return;
    await sleep(500);
  }
}
