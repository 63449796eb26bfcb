/**
 * Activity proxies with named timeout profiles. Workflows see activities by type only.
 *
 * - conductor: local activities on the conductor (database work, ~ms each): no task-queue round trip.
 *   Retried until the operation's bound (a few minutes, unlimited attempts: a database outage of a
 *   minute or more is ridden out; the SDK backs off with timers past the local-retry threshold);
 *   business failures are non-retryable ApplicationFailures. A cancelled workflow waits for a
 *   running step to finish (its result is then undone), so nothing is allocated behind the saga's back.
 * - onHost(name): activities on `host.<name>`. scheduleToStart and the heartbeat timeout are short, so
 *   a dead agent fails the step in seconds (and the create flow reschedules) instead of after the
 *   3-minute start-to-close bound.
 * - cleanupOnHost(name): undo work on a host. Bounded to well under a minute: an undo that cannot run
 *   (the host is down) goes into the ledger of leftovers, where the reconciler retries it; it never
 *   holds a server in BUILD.
 */
import { ActivityCancellationType, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { ComputeControlActivities } from '../activities/compute/control';
import type { ComputeHostActivitiesContract } from '../activities/compute/types';
import type { ImageControlActivities } from '../activities/image/control';
import type { NetworkControlActivities } from '../activities/network/control';
import type { ReconcileControlActivities } from '../activities/reconcile/control';
import type { StorageControlActivities } from '../activities/storage/control';
import type { StorageHostActivitiesContract } from '../activities/storage/types';
import { hostTaskQueue } from '../temporal/constants';

export type ConductorActivities = ComputeControlActivities &
  ImageControlActivities &
  NetworkControlActivities &
  StorageControlActivities &
  ReconcileControlActivities;

/** How long a conductor step keeps retrying (a database outage) before the saga gives up on it. */
export const CONDUCTOR_STEP_BOUND = '3 minutes';
/** How long a host may stay silent (no task pickup, no heartbeat) before its step fails. */
export const HOST_SILENCE_SECONDS = 20;

export const conductor = proxyLocalActivities<ConductorActivities>({
  startToCloseTimeout: '15 seconds',
  scheduleToCloseTimeout: CONDUCTOR_STEP_BOUND,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '100 ms', backoffCoefficient: 2, maximumInterval: '5 seconds' },
});

export type HostActivities = ComputeHostActivitiesContract & StorageHostActivitiesContract;

/** Host-side activities of one host. Boot-class work: a few tries on that host, then the caller decides. */
export function onHost(hostName: string) {
  return proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(hostName),
    scheduleToStartTimeout: `${HOST_SILENCE_SECONDS} seconds`,
    heartbeatTimeout: `${HOST_SILENCE_SECONDS} seconds`,
    startToCloseTimeout: '3 minutes',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: '300 ms',
      maximumInterval: '5 seconds',
      maximumAttempts: 3,
      nonRetryableErrorTypes: ['HypervisorRejected', 'InjectedFault'],
    },
  });
}

/** Undo work on a host: a few tries within a short bound; what still fails goes to the ledger. */
export function cleanupOnHost(hostName: string) {
  return proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(hostName),
    scheduleToStartTimeout: '15 seconds',
    heartbeatTimeout: `${HOST_SILENCE_SECONDS} seconds`,
    startToCloseTimeout: '40 seconds',
    scheduleToCloseTimeout: '45 seconds',
    retry: { initialInterval: '500 ms', maximumInterval: '5 seconds', nonRetryableErrorTypes: ['HypervisorRejected', 'InjectedFault'] },
  });
}
