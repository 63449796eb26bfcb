/** Power actions on a server (start, stop, reboot) on its host; the API has already checked the state. */
import { ApplicationFailure } from '@temporalio/workflow';
import { domainNameFor, type PowerAction } from '../activities/compute/types';
import { conductor, onHost } from './activity-proxies';
import { finishing, OperationTracker, operationFailure } from './progress';

const AFTER: Record<PowerAction, { status: 'ACTIVE' | 'SHUTOFF'; powerState: string }> = {
  start: { status: 'ACTIVE', powerState: 'running' },
  reboot: { status: 'ACTIVE', powerState: 'running' },
  stop: { status: 'SHUTOFF', powerState: 'shutoff' },
};
const TASK_STATE: Record<PowerAction, string> = { start: 'powering-on', stop: 'powering-off', reboot: 'rebooting' };

export function serverActionWorkflowId(serverId: string, operationId: string): string {
  return `server:${serverId}:action:${operationId}`;
}

export async function serverAction(input: { serverId: string; operationId: string; action: PowerAction }): Promise<void> {
  const { serverId, action } = input;
  const t = new OperationTracker([action], { operationId: input.operationId, resourceType: 'server', resourceId: serverId });
  try {
    await t.run(action, async () => {
      const server = await conductor.setServerState({ serverId, taskState: TASK_STATE[action] });
      if (!server.host) throw ApplicationFailure.nonRetryable('the server has no host', 'NoHost');
      await onHost(server.host).powerAction({ domainName: domainNameFor(serverId), action });
    });
    await conductor.finishServerOperation({ server: { serverId, taskState: null, ...AFTER[action] }, operationId: input.operationId, status: 'succeeded' });
    t.succeed();
  } catch (err) {
    const fault = t.failed(err);
    // The server keeps running (or not) as it was: clear the task, record the failed action on the operation.
    await finishing(() =>
      conductor.finishServerOperation({ server: { serverId, taskState: null }, operationId: input.operationId, status: 'failed', error: fault }),
    );
    throw operationFailure(fault);
  }
}
