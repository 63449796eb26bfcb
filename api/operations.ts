/**
 * Operations: every mutating call records one (kind, resource, workflow id) and starts its workflow
 * with Stratus's search attributes, so Temporal UI lists every operation of a project or resource.
 * Reading one is reading its row: the workflow writes its step progress there at each step it marks.
 * Only GET /v1/operations/{id} of a still-running operation asks Temporal whether the run has closed
 * without finishing it (terminated, timed out), with a short deadline.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import type { Knex } from 'knex';
import type { Config } from '../core/config';
import * as operations from '../db/repositories/operations';
import type { components } from '../openapi/types';
import { temporalUiRunUrl } from '../temporal/connection';
import { startOperationWorkflow, type ConductorClient } from '../temporal/start-operation';
import type { OperationDef } from '../workflows/catalog';
import type { Progress } from '../workflows/progress';
import { DependencyUnavailable } from './problem';

type Schemas = components['schemas'];

export interface OperationDeps {
  db: Knex;
  temporal: Client;
  config: Pick<Config, 'api' | 'temporal'>;
}

/** The API's Temporal client with the cloud's conductor task queue, where the workflows it starts run. */
export function conductorOf(deps: Pick<OperationDeps, 'temporal' | 'config'>): ConductorClient {
  return { client: deps.temporal, taskQueue: deps.config.temporal.conductorTaskQueue };
}

/** One operation of the catalog on one resource; `input` (the workflow's argument) gets the new operation's id. */
export interface OperationSpec<W extends Workflow = Workflow> {
  def: OperationDef<W>;
  resourceId: string;
  projectId: string;
  input: (operationId: string) => Parameters<W>[0];
}

/**
 * Records an operation (in the caller's transaction, when it has one) before its workflow starts,
 * with what starts that workflow: the row is the commitment (a start that never happens is made by
 * the reconciler, or by a retry with the same Idempotency-Key).
 */
export function recordOperation<W extends Workflow>(db: Knex | Knex.Transaction, spec: OperationSpec<W>): Promise<operations.Operation> {
  const id = randomUUID();
  return operations.create(db, {
    id,
    kind: spec.def.kind,
    resourceType: spec.def.resourceType,
    resourceId: spec.resourceId,
    projectId: spec.projectId,
    workflowId: spec.def.workflowId(spec.resourceId, id),
    workflowType: spec.def.workflow.name,
    workflowArgs: [spec.input(id)],
  });
}

/**
 * Starts the workflow of a recorded operation (a running one of that id is reused: a retried
 * request). Temporal down → DependencyUnavailable (503) within the start deadline. With
 * `onFailure: 'fail'` the operation is finished as failed (the caller undoes its own record); with
 * 'keep' it stays recorded, for the reconciler or a retry to start.
 */
export async function launchOperation(deps: OperationDeps, op: operations.Operation, onFailure: 'fail' | 'keep' = 'fail'): Promise<operations.Operation> {
  try {
    const runId = await startOperationWorkflow(conductorOf(deps), op, op.workflowType ?? '', op.workflowArgs ?? []);
    return await operations.setRunId(deps.db, op.id, runId);
  } catch (err) {
    if (onFailure === 'fail') {
      const message = err instanceof Error ? err.message : String(err);
      await operations.finish(deps.db, op.id, { status: 'failed', error: { step: 'start', code: 'WorkflowStartFailed', message } }).catch(() => undefined);
    }
    throw DependencyUnavailable.from(err, 'Temporal', onFailure === 'keep' ? `operation ${op.id} is recorded and will complete once Temporal answers` : undefined);
  }
}

/** Records an operation and starts its workflow. */
export async function startOperation<W extends Workflow>(deps: OperationDeps, spec: OperationSpec<W>): Promise<operations.Operation> {
  return launchOperation(deps, await recordOperation(deps.db, spec));
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
export function storedProgress(op: Pick<operations.Operation, 'progress'>): Schemas['Progress'] | null {
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
