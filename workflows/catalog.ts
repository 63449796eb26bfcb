/**
 * The operation catalog: every operation Stratus runs as a workflow, declared once (kind, resource
 * type, workflow function, workflow id, Nova-style task state). Workflow-safe (no Node imports): the
 * API starts workflows by reference to these entries (typed arguments, no strings), the reconciler
 * restarts them from the same entries, and each workflow id is built by exactly one function.
 */
import type { Workflow } from '@temporalio/common';
import { createServer, createServerWorkflowId } from './create-server';
import { deleteServer, deleteServerWorkflowId } from './delete-server';
import { reconciler, reconcilerWorkflowId } from './reconciler';
import { serverBatchWorkflowId } from './batch-contract';
import { serverBatch } from './server-batch';
import { serverAction, serverActionWorkflowId } from './server-action';
import { attachVolume, createVolume, deleteVolume, detachVolume, volumeWorkflowId } from './volumes';

export interface OperationDef<W extends Workflow = Workflow> {
  kind: string;
  resourceType: 'server' | 'volume' | 'batch';
  workflow: W;
  /** The workflow id of one operation on one resource. */
  workflowId: (resourceId: string, operationId: string) => string;
  /** task_state the resource shows while the operation runs (null: the resource's own status says it). */
  taskState: string | null;
}

function def<W extends Workflow>(d: OperationDef<W>): OperationDef<W> {
  return d;
}

export const OPERATIONS = {
  serverCreate: def({ kind: 'server.create', resourceType: 'server', workflow: createServer, workflowId: (id) => createServerWorkflowId(id), taskState: 'scheduling' }),
  serverDelete: def({ kind: 'server.delete', resourceType: 'server', workflow: deleteServer, workflowId: (id) => deleteServerWorkflowId(id), taskState: 'deleting' }),
  serverStart: def({ kind: 'server.start', resourceType: 'server', workflow: serverAction, workflowId: serverActionWorkflowId, taskState: 'powering-on' }),
  serverStop: def({ kind: 'server.stop', resourceType: 'server', workflow: serverAction, workflowId: serverActionWorkflowId, taskState: 'powering-off' }),
  serverReboot: def({ kind: 'server.reboot', resourceType: 'server', workflow: serverAction, workflowId: serverActionWorkflowId, taskState: 'rebooting' }),
  volumeCreate: def({ kind: 'volume.create', resourceType: 'volume', workflow: createVolume, workflowId: (id, op) => volumeWorkflowId(id, 'create', op), taskState: null }),
  volumeDelete: def({ kind: 'volume.delete', resourceType: 'volume', workflow: deleteVolume, workflowId: (id, op) => volumeWorkflowId(id, 'delete', op), taskState: null }),
  volumeAttach: def({ kind: 'volume.attach', resourceType: 'volume', workflow: attachVolume, workflowId: (id, op) => volumeWorkflowId(id, 'attach', op), taskState: null }),
  volumeDetach: def({ kind: 'volume.detach', resourceType: 'volume', workflow: detachVolume, workflowId: (id, op) => volumeWorkflowId(id, 'detach', op), taskState: null }),
  // A batch's runs (create, retry, delete) never overlap: one workflow id per batch.
  batchCreate: def({ kind: 'batch.create', resourceType: 'batch', workflow: serverBatch, workflowId: (id) => serverBatchWorkflowId(id), taskState: null }),
  batchRetry: def({ kind: 'batch.retry', resourceType: 'batch', workflow: serverBatch, workflowId: (id) => serverBatchWorkflowId(id), taskState: null }),
  batchDelete: def({ kind: 'batch.delete', resourceType: 'batch', workflow: serverBatch, workflowId: (id) => serverBatchWorkflowId(id), taskState: null }),
} as const;

export type OperationName = keyof typeof OPERATIONS;

/** The catalog entry of a recorded kind (e.g. 'server.create'), or undefined for an unknown one. */
export function operationByKind(kind: string): OperationDef | undefined {
  return Object.values(OPERATIONS).find((d) => d.kind === kind);
}

/** The reconciler is a singleton workflow (one per cloud: per conductor task queue), not an operation on a resource. */
export const RECONCILER = { workflow: reconciler, workflowId: reconcilerWorkflowId } as const;
