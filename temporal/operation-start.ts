/**
 * How every operation's workflow is started, by the API and by conductor activities alike: on the
 * conductor's queue, reusing a running execution of the same id (a retried request or activity), with
 * the search attributes that let Temporal UI list every operation of a project or resource.
 */
import type { WorkflowIdConflictPolicy, WorkflowIdReusePolicy } from '@temporalio/common';
import { CONDUCTOR_TASK_QUEUE, searchAttributes } from './constants';

export interface OperationIdentity {
  workflowId: string;
  projectId: string;
  resourceId: string;
  kind: string;
}

export function operationStartOptions(op: OperationIdentity, reuse?: WorkflowIdReusePolicy) {
  return {
    workflowId: op.workflowId,
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowIdConflictPolicy: 'USE_EXISTING' as WorkflowIdConflictPolicy,
    ...(reuse ? { workflowIdReusePolicy: reuse } : {}),
    typedSearchAttributes: [
      { key: searchAttributes.project, value: op.projectId },
      { key: searchAttributes.resourceId, value: op.resourceId },
      { key: searchAttributes.operationKind, value: op.kind },
    ],
  };
}
