/**
 * A batch of servers (`batch:<id>`): creates `count` members from one template, each an ordinary
 * server made by the ordinary create workflow (so everything the create flow guarantees holds per
 * member), keeping at most `maxParallel` members in BUILD at once.
 *
 * Scale: members are started by an activity, not as child workflows, and their state is read back
 * from the database; so this workflow's history grows with the number of progress polls (a few
 * events each), not with the number of members, and it continues-as-new when Temporal suggests it.
 * A batch of 10,000 stays far from the 51,200-event and 2,000-pending-children limits.
 *
 * Ends: `succeeded` when at least `minCount` members are ACTIVE; else `failed`, and with
 * `rollbackOnFailure` the members that did succeed are deleted. `cancel` (a signal) stops launching
 * and deletes every member (those in flight through their create's cancel): the batch ends
 * `cancelled` with nothing left. A retry (a new run on the same batch) launches only members that are missing or in
 * ERROR; a member that succeeded is never created again. Deleting a batch that has ended is a run
 * that deletes every member.
 *
 * Undo of each step: launching a member → the member's own create saga; the batch as a whole →
 * rollback (delete workflows of the members), used on cancel and on failure with rollbackOnFailure.
 */
import { condition, continueAsNew, patched, proxyActivities, proxyLocalActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { BatchActivities } from '../activities/compute/batch';
import type { MemberCounts } from '../db/repositories/batches';
import { batchProgressQuery, cancelBatchSignal, type BatchRunState, type ServerBatchInput } from './batch-contract';

/** Members started per activity call, and how often the batch looks at its members. */
const LAUNCH_CHUNK = 50;
const POLL = '250 ms';

const launcher = proxyActivities<BatchActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '500 ms', maximumInterval: '10 seconds' },
});
const reader = proxyLocalActivities<BatchActivities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '200 ms', maximumInterval: '5 seconds' },
});

export async function serverBatch(input: ServerBatchInput): Promise<{ status: string; counts: MemberCounts }> {
  const { batchId } = input;
  const state: BatchRunState = { phase: 'launching', next: input.next ?? 0, counts: null };
  let cancelled = input.rollingBack === 'cancel';
  setHandler(cancelBatchSignal, () => {
    cancelled = true;
  });
  setHandler(batchProgressQuery, () => state);

  const progress = async () => (state.counts = await reader.batchProgress({ batchId }));
  // A run stays short: after an eviction from the worker's cache a run is replayed in one activation,
  // and a 10,000-event replay on 2 loaded cores outlived the SDK's 5 s activation bound (which crashed
  // the worker's thread, Node's 'async hook stack has become corrupted'). Runs recorded before keep 10,000.
  const roomToGrow = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > (patched('batch-short-runs') ? 2_000 : 10_000);

  while (!cancelled && !input.rollingBack) {
    const counts = await progress();
    if (state.next >= input.count && counts.BUILD === 0) break;
    const room = input.maxParallel - counts.BUILD;
    if (state.next < input.count && room > 0) {
      const to = Math.min(input.count, state.next + Math.min(room, LAUNCH_CHUNK));
      await launcher.launchBatchMembers({ batchId, from: state.next, to });
      state.next = to;
      continue;
    }
    await condition(() => cancelled, POLL);
    if (!cancelled && roomToGrow()) await continueAsNew<typeof serverBatch>({ ...input, next: state.next });
  }

  if (input.rollingBack === 'delete') {
    await rollBack('delete');
    await launcher.finishBatch({ batchId, operationId: input.operationId, status: 'deleted' });
    state.phase = 'done';
    return { status: 'deleted', counts: await progress() };
  }

  if (cancelled) {
    await rollBack('cancel');
    const counts = await progress();
    await launcher.finishBatch({ batchId, operationId: input.operationId, status: 'cancelled' });
    state.phase = 'done';
    return { status: 'cancelled', counts };
  }

  const counts = await progress();
  if (counts.ACTIVE >= input.minCount) {
    await launcher.finishBatch({ batchId, operationId: input.operationId, status: 'succeeded' });
    state.phase = 'done';
    return { status: 'succeeded', counts };
  }
  const fault = { code: 'BatchBelowMinCount', message: `${counts.ACTIVE} of ${input.count} members ACTIVE, fewer than min_count ${input.minCount}` };
  if (input.rollbackOnFailure) await rollBack('failure');
  await launcher.finishBatch({ batchId, operationId: input.operationId, status: 'failed', fault });
  state.phase = 'done';
  return { status: 'failed', counts: await progress() };

  /**
   * Deletes members until none is left: every member on cancel; on failure only those that
   * succeeded (the failed ones stay in ERROR, with their faults, holding nothing).
   */
  async function rollBack(why: 'cancel' | 'failure' | 'delete'): Promise<void> {
    state.phase = 'rolling_back';
    for (;;) {
      const { remaining } = await launcher.deleteBatchMembers({ batchId, maxInFlight: input.maxParallel, onlySucceeded: why === 'failure' });
      if (remaining === 0) return;
      await condition(() => false, POLL);
      if (roomToGrow()) await continueAsNew<typeof serverBatch>({ ...input, next: state.next, rollingBack: why });
    }
  }
}
