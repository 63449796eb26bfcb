/**
 * Activity proxies with named timeout profiles. Workflows see activities by type only.
 *
 * - conductor: local activities on the conductor (database work, ~ms each): no task-queue round trip,
 *   retried briefly for transient faults; business failures are non-retryable ApplicationFailures.
 * - host(name): activities on `host.<name>`. scheduleToStart is bounded so a dead agent fails the step
 *   (and the create flow reschedules) instead of leaving the server in BUILD forever.
 */
import { proxyActivities, proxyLocalActivities, type ApplicationFailure } from '@temporalio/workflow';
import type { ComputeControlActivities } from '../activities/compute/control';
import type { ComputeHostActivitiesContract } from '../activities/compute/types';
import type { ImageControlActivities } from '../activities/image/control';
import type { NetworkControlActivities } from '../activities/network/control';
import type { StorageControlActivities } from '../activities/storage/control';
import type { StorageHostActivitiesContract } from '../activities/storage/types';
import { hostTaskQueue } from '../temporal/constants';
import { operationFailure, type Fault } from './progress';

export type ConductorActivities = ComputeControlActivities &
  ImageControlActivities &
  NetworkControlActivities &
  StorageControlActivities;

export const conductor = proxyLocalActivities<ConductorActivities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '100 ms', maximumInterval: '2 seconds', maximumAttempts: 5 },
});

export type HostActivities = ComputeHostActivitiesContract & StorageHostActivitiesContract;

/** Host-side activities of one host. Boot-class work: a few tries on that host, then the caller decides. */
export function onHost(hostName: string) {
  return proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(hostName),
    scheduleToStartTimeout: '30 seconds',
    startToCloseTimeout: '3 minutes',
    retry: {
      initialInterval: '300 ms',
      maximumInterval: '5 seconds',
      maximumAttempts: 3,
      nonRetryableErrorTypes: ['HypervisorRejected', 'InjectedFault'],
    },
  });
}

/** Undo work on a host: keep trying (an agent restart must not leak a domain), but not forever. */
export function cleanupOnHost(hostName: string) {
  return proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(hostName),
    startToCloseTimeout: '3 minutes',
    scheduleToCloseTimeout: '30 minutes',
    retry: { initialInterval: '500 ms', maximumInterval: '30 seconds', nonRetryableErrorTypes: ['HypervisorRejected'] },
  });
}

/**
 * A server operation that failed for good: the server goes to ERROR with the fault, the operation is
 * finished as failed, and the returned failure is what the workflow throws (Temporal UI shows it).
 */
export async function serverFailed(serverId: string, operationId: string, fault: Fault): Promise<ApplicationFailure> {
  await conductor.finishServerOperation({ server: { serverId, status: 'ERROR', taskState: null, fault }, operationId, status: 'failed', error: fault });
  return operationFailure(fault);
}
