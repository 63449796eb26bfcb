/**
 * The reconciler: one long-running workflow per cloud (id `stratus:reconciler`, started by the
 * conductor process, continued as new every few hundred rounds) that makes every operation converge:
 *
 * - retries the ledger of leftovers (undos that failed, e.g. on a host that was down) until each
 *   succeeds, all at once (a dead host costs one bounded wait per round, not one per entry);
 * - finds operations recorded 'running' that no running workflow will finish (never started,
 *   terminated) and starts their workflow, or the cleanup of a create that was terminated.
 */
import { continueAsNew, sleep, workflowInfo } from '@temporalio/workflow';
import { CONDUCTOR_TASK_QUEUE } from '../temporal/constants';
import { conductor } from './activity-proxies';
import { faultMessage, performAction } from './progress';

/**
 * The reconciler's workflow id: `stratus:reconciler` on the default conductor task queue, else
 * `stratus:reconciler:<queue>`, so that the clouds sharing a Temporal namespace (each on its own
 * queue: STRATUS_CONDUCTOR_TASK_QUEUE) each keep theirs (a conductor replaces its cloud's reconciler).
 */
export function reconcilerWorkflowId(conductorTaskQueue: string): string {
  return conductorTaskQueue === CONDUCTOR_TASK_QUEUE ? 'stratus:reconciler' : `stratus:reconciler:${conductorTaskQueue}`;
}

export interface ReconcilerInput {
  /** Seconds between rounds. */
  intervalSeconds: number;
  /** A running operation younger than this is left alone (its API call may still be starting it). */
  graceSeconds: number;
}

const ROUNDS_PER_RUN = 200;
const BATCH = 50;

export async function reconciler(input: ReconcilerInput): Promise<void> {
  for (let round = 0; round < ROUNDS_PER_RUN && !workflowInfo().continueAsNewSuggested; round += 1) {
    try {
      const pending = await conductor.pendingLeftovers({ limit: BATCH });
      await Promise.all(
        pending.map(async (l) => {
          try {
            await performAction(l.action);
            await conductor.leftoverDone({ id: l.id });
          } catch (err) {
            await conductor.leftoverFailed({ id: l.id, error: faultMessage(err, l.action.host ?? undefined) });
          }
        }),
      );
      await conductor.recoverOrphans({ graceSeconds: input.graceSeconds, limit: BATCH });
    } catch {
      // The database is down for longer than a conductor step's bound: try again next round.
    }
    await sleep(input.intervalSeconds * 1000);
  }
  await continueAsNew<typeof reconciler>(input);
}
