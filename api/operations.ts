/**
 * Operations: every mutating call records one (kind, resource, workflow id) and starts its workflow
 * with Stratus's search attributes, so Temporal UI lists every operation of a project or resource.
 * Reading one merges the database row with the workflow's live `progress` query.
 */
import { randomUUID } from 'node:crypto';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Knex } from 'knex';
import type { Config } from '../core/config';
import * as operations from '../db/repositories/operations';
import type { components } from '../openapi/types';
import { operationStartOptions } from '../temporal/operation-start';
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
    const handle = await deps.temporal.workflow.start(workflowType, { ...operationStartOptions(op), args });
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

/** The workflow's `progress` query (and, when asked, whether the run has closed and how). */
async function liveProgress(handle: WorkflowHandle, withStatus: boolean): Promise<{ progress: Progress | null; closedAs: string | null }> {
  try {
    const [progress, description] = await Promise.all([
      handle.query<Progress>('progress').catch(() => null),
      withStatus ? handle.describe() : Promise.resolve(undefined),
    ]);
    const status = description?.status.name ?? 'RUNNING';
    return { progress, closedAs: status === 'RUNNING' ? null : status };
  } catch {
    return { progress: null, closedAs: null };
  }
}

export async function presentOperation(deps: OperationDeps, op: operations.Operation, withProgress = true): Promise<Schemas['Operation']> {
  let status = op.status;
  let progress: Progress | null = null;
  if (withProgress) {
    const live = await liveProgress(deps.temporal.workflow.getHandle(op.workflowId, op.runId ?? undefined), true);
    progress = live.progress;
    // A run that ended without finishing its operation (terminated, timed out) did not succeed.
    if (status === 'running' && live.closedAs && live.closedAs !== 'COMPLETED') status = 'failed';
  }
  return {
    id: op.id,
    kind: op.kind,
    resource_type: op.resourceType,
    resource_id: op.resourceId,
    status,
    error: (op.error as Schemas['Fault'] | null) ?? progress?.error ?? null,
    progress: progress ? presentProgress(progress) : null,
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

/** The live progress of an operation's workflow (one query, no describe), or null when it is not answering. */
export async function operationProgress(deps: OperationDeps, op: operations.Operation): Promise<Schemas['Progress'] | null> {
  const { progress } = await liveProgress(deps.temporal.workflow.getHandle(op.workflowId, op.runId ?? undefined), false);
  return progress ? presentProgress(progress) : null;
}
