/**
 * Operations: every mutating call records one (kind, resource, workflow id) and starts its workflow
 * with Stratus's search attributes, so Temporal UI lists every operation of a project or resource.
 * Reading one is reading its row: the workflow writes its step progress there at each step it marks.
 * Only GET /v1/operations/{id} of a still-running operation asks Temporal whether the run has closed
 * without finishing it (terminated, timed out), with a short deadline.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Knex } from 'knex';
import type { Config } from '../core/config';
import * as operations from '../db/repositories/operations';
import type { components } from '../openapi/types';
import { CONDUCTOR_TASK_QUEUE, searchAttributes } from '../temporal/constants';
import { temporalUiRunUrl } from '../temporal/connection';
import type { Progress } from '../workflows/progress';

type Schemas = components['schemas'];

export interface OperationDeps {
  db: Knex;
  temporal: Client;
  config: Pick<Config, 'api' | 'temporal'>;
}

/** What an operation is and which workflow runs it. */
export interface OperationSpec {
  kind: string;
  resourceType: string;
  resourceId: string;
  projectId: string;
  workflowType: string;
  workflowId: string;
}

/** Records an operation (in the caller's transaction, when it has one) before its workflow starts. */
export function recordOperation(db: Knex | Knex.Transaction, spec: OperationSpec): Promise<operations.Operation> {
  return operations.create(db, {
    id: randomUUID(),
    kind: spec.kind,
    resourceType: spec.resourceType,
    resourceId: spec.resourceId,
    projectId: spec.projectId,
    workflowId: spec.workflowId,
  });
}

/**
 * Starts the workflow of a recorded operation, with the search attributes that let Temporal UI list
 * every operation of a project or resource. An already running workflow of that id is reused (a
 * retried request). If the start fails, the operation is finished as failed and the error rethrown,
 * for the caller to undo its own record.
 */
export async function launchOperation(deps: OperationDeps, op: operations.Operation, workflowType: string, args: unknown[]): Promise<operations.Operation> {
  try {
    const handle = await deps.temporal.workflow.start(workflowType, {
      workflowId: op.workflowId,
      taskQueue: CONDUCTOR_TASK_QUEUE,
      args,
      workflowIdConflictPolicy: 'USE_EXISTING',
      typedSearchAttributes: [
        { key: searchAttributes.project, value: op.projectId },
        { key: searchAttributes.resourceId, value: op.resourceId },
        { key: searchAttributes.operationKind, value: op.kind },
      ],
    });
    return await operations.setRunId(deps.db, op.id, handle.firstExecutionRunId);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await operations.finish(deps.db, op.id, { status: 'failed', error: { step: 'start', code: 'WorkflowStartFailed', message } }).catch(() => undefined);
    throw err;
  }
}

/** Records an operation and starts its workflow (`args` gets the new operation's id). */
export async function startOperation(
  deps: OperationDeps,
  spec: OperationSpec & { args: (operationId: string) => unknown[] },
): Promise<operations.Operation> {
  const op = await recordOperation(deps.db, spec);
  return launchOperation(deps, op, spec.workflowType, spec.args(op.id));
}

/** How long GET /v1/operations/{id} waits for Temporal to say whether a running operation's run has closed. */
const DESCRIBE_DEADLINE_MS = 1000;

/** How the run ended ('TERMINATED', 'TIMED_OUT', …), null while running or when Temporal does not answer in time. */
async function closedAs(deps: OperationDeps, op: operations.Operation): Promise<string | null> {
  try {
    const handle = deps.temporal.workflow.getHandle(op.workflowId, op.runId ?? undefined);
    const description = await deps.temporal.withDeadline(Date.now() + DESCRIBE_DEADLINE_MS, () => handle.describe());
    const status = description.status.name;
    return status === 'RUNNING' ? null : status;
  } catch {
    return null;
  }
}

/** The progress the workflow last wrote into the operation's row, or null before its first step. */
export function storedProgress(op: operations.Operation): Schemas['Progress'] | null {
  const progress = op.progress as Progress | null;
  return progress ? presentProgress(progress) : null;
}

/**
 * The operation as its row has it. `checkRun`: for a running operation, also ask Temporal (with a
 * deadline) whether its run closed without finishing it; never asked for a finished operation.
 */
export async function presentOperation(deps: OperationDeps, op: operations.Operation, checkRun = false): Promise<Schemas['Operation']> {
  let status = op.status;
  // A run that ended without finishing its operation (terminated, timed out) did not succeed.
  if (checkRun && status === 'running') {
    const closed = await closedAs(deps, op);
    if (closed && closed !== 'COMPLETED') status = 'failed';
  }
  const progress = storedProgress(op);
  return {
    id: op.id,
    kind: op.kind,
    resource_type: op.resourceType,
    resource_id: op.resourceId,
    status,
    error: (op.error as Schemas['Fault'] | null) ?? progress?.error ?? null,
    progress: progress && { ...progress, status: op.status === 'running' ? progress.status : op.status, current: op.status === 'running' ? progress.current : null },
    created_at: op.createdAt.toISOString(),
    updated_at: op.updatedAt.toISOString(),
    links: {
      self: `${deps.config.api.publicUrl}/v1/operations/${op.id}`,
      temporal_ui: temporalUiRunUrl(deps.config.temporal.uiUrl, deps.config.temporal.namespace, op.workflowId, op.runId ?? ''),
    },
  };
}

export function presentProgress(p: Progress): Schemas['Progress'] {
  return {
    status: p.status,
    current: p.current,
    hosts: p.hosts,
    error: p.error,
    steps: p.steps.map((s) => ({
      name: s.name,
      status: s.status,
      attempts: s.attempts,
      ...(s.startedAt ? { started_at: s.startedAt } : {}),
      ...(s.endedAt ? { ended_at: s.endedAt } : {}),
      ...(s.error ? { error: s.error } : {}),
    })),
  };
}
