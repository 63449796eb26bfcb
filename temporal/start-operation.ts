/**
 * Starting an operation's workflow, the one way the API (first start) and the reconciler (a start
 * that never happened, a run that closed before finishing its operation) both do it: on the cloud's
 * conductor task queue, with Stratus's search attributes, reusing a running workflow of that id
 * (a retried request), within a deadline so a Temporal outage is an error in seconds, not 20 s.
 */
import type { Client } from '@temporalio/client';
import type { Workflow, WorkflowIdReusePolicy } from '@temporalio/common';
import { searchAttributes } from './constants';

/**
 * What code that starts Stratus workflows needs: a Temporal client and the cloud's conductor task
 * queue (config.temporal.conductorTaskQueue), where every workflow runs.
 */
export interface ConductorClient {
  client: Client;
  taskQueue: string;
}

/** A start waits this long for Temporal before failing (the API then answers 503). */
export const START_DEADLINE_MS = 5000;

export interface OperationRef {
  workflowId: string;
  kind: string;
  projectId: string;
  resourceId: string;
}

/** Starts (or finds running) the operation's workflow; returns its first run id. */
export async function startOperationWorkflow<W extends Workflow>(
  { client, taskQueue }: ConductorClient,
  op: OperationRef,
  workflow: W | string,
  args: unknown[],
  deadlineMs = START_DEADLINE_MS,
  /** 'ALLOW_DUPLICATE_FAILED_ONLY' where a completed run must never run again (a batch member's create). */
  reuse?: WorkflowIdReusePolicy,
): Promise<string> {
  const handle = await client.withDeadline(Date.now() + deadlineMs, () =>
    client.workflow.start(workflow as string, {
      workflowId: op.workflowId,
      taskQueue,
      args,
      workflowIdConflictPolicy: 'USE_EXISTING',
      ...(reuse ? { workflowIdReusePolicy: reuse } : {}),
      typedSearchAttributes: [
        { key: searchAttributes.project, value: op.projectId },
        { key: searchAttributes.resourceId, value: op.resourceId },
        { key: searchAttributes.operationKind, value: op.kind },
      ],
    }),
  );
  return handle.firstExecutionRunId;
}
