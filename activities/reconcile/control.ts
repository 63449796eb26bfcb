/**
 * The reconciler's conductor activities: the ledger of leftovers (record, list pending, done, failed
 * again) and orphaned operations (recorded 'running', but no running workflow will ever finish them:
 * the API crashed between the row and the start, Temporal refused the start, or someone terminated
 * the run). Every one is idempotent: re-running it after a crash changes nothing more.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Knex } from 'knex';
import type { Logger } from '../../core/log';
import * as leftovers from '../../db/repositories/leftovers';
import * as operations from '../../db/repositories/operations';
import { startOperationWorkflow, type ConductorClient } from '../../temporal/start-operation';

export interface ReconcileControlDeps {
  db: Knex;
  /** Looks up and (re)starts operations' workflows (on the cloud's conductor task queue). */
  temporal?: ConductorClient;
  log: Logger;
}

/** A pending ledger entry, as the reconciler workflow needs it. */
export interface PendingLeftover {
  id: string;
  action: leftovers.LeftoverAction;
  attempts: number;
}

export interface OrphanReport {
  /** Operations whose workflow never started, started now from their row. */
  started: string[];
  /** Creates whose run closed unfinished: their cleanup workflow was started. */
  cleaning: string[];
  /** Rows that cannot be restarted (no recorded workflow): finished as failed. */
  failed: string[];
}

/** Workflow id of the cleanup the reconciler runs for a create whose run closed unfinished. */
export function createCleanupWorkflowId(serverId: string): string {
  return `server:${serverId}:cleanup`;
}

export function createReconcileControlActivities({ db, temporal, log }: ReconcileControlDeps) {
  const reconcileLog = log.child({ component: 'reconciler' });

  /** A conductor built without a Temporal client (some tests) cannot look for orphans: say so once, do not retry. */
  function needTemporal(): ConductorClient {
    if (!temporal) throw ApplicationFailure.nonRetryable('this conductor has no Temporal client: it cannot look for orphaned operations', 'NoTemporalClient');
    return temporal;
  }

  /** RUNNING, closed (and how), or never started. */
  async function workflowState(workflowId: string): Promise<{ state: 'running' | 'closed' | 'missing'; status?: string; runId?: string }> {
    const temporal = needTemporal();
    try {
      const d = await temporal.client.workflow.getHandle(workflowId).describe();
      return { state: d.status.name === 'RUNNING' ? 'running' : 'closed', status: d.status.name, runId: d.runId };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { state: 'missing' };
      throw err;
    }
  }

  return {
    /** Files what an undo could not clean up. The workflow gives the id, so a re-run records it once. */
    async recordLeftover(input: leftovers.NewLeftover & { id: string }): Promise<void> {
      const entry = await leftovers.record(db, input);
      reconcileLog.warn(
        { leftover: entry.id, operation: input.operationId, resource: `${input.resourceType}/${input.resourceId}`, host: input.action.host, activity: input.action.activity, error: input.error },
        'undo failed: left in the ledger for the reconciler',
      );
    },

    async pendingLeftovers({ limit }: { limit: number }): Promise<PendingLeftover[]> {
      return (await leftovers.list(db, { status: 'pending', limit })).map((l) => ({ id: l.id, action: l.action, attempts: l.attempts }));
    },

    async leftoverDone({ id }: { id: string }): Promise<void> {
      await leftovers.markDone(db, id);
      reconcileLog.info({ leftover: id }, 'leftover cleaned up');
    },

    async leftoverFailed({ id, error }: { id: string; error: string }): Promise<void> {
      await leftovers.recordAttempt(db, id, error);
    },

    /**
     * Finds operations recorded 'running' (for longer than `graceSeconds`) that no running workflow
     * will finish, and makes one: starts a workflow that never started from its recorded type and
     * arguments (the request completes as asked), starts the cleanup of a create whose run closed
     * unfinished (terminated, timed out), restarts any other closed run (every workflow is idempotent).
     */
    async recoverOrphans({ graceSeconds, limit }: { graceSeconds: number; limit: number }): Promise<OrphanReport> {
      const temporal = needTemporal();
      const report: OrphanReport = { started: [], cleaning: [], failed: [] };
      const candidates = await operations.listRunning(db, { before: new Date(Date.now() - graceSeconds * 1000), limit });
      for (const op of candidates) {
        const wf = await workflowState(op.workflowId);
        if (wf.state === 'running') {
          if (!op.runId && wf.runId) await operations.setRunId(db, op.id, wf.runId);
          continue;
        }
        // The list was read before the describe: a run that finished its operation and closed in
        // between is done, not orphaned (cleaning it up turned ACTIVE servers into ERROR).
        if (wf.state === 'closed' && (await operations.get(db, op.id))?.status !== 'running') continue;
        const ref = { workflowId: op.workflowId, kind: op.kind, projectId: op.projectId, resourceId: op.resourceId };
        if (op.kind === 'server.create' && wf.state === 'closed') {
          const fault = { step: 'workflow', code: 'WorkflowClosed', message: `the create workflow ended (${wf.status}) before it finished; cleaned up by the reconciler` };
          await startOperationWorkflow(temporal, { ...ref, workflowId: createCleanupWorkflowId(op.resourceId) }, 'deleteServer', [
            { serverId: op.resourceId, operationId: op.id, endAs: fault },
          ]);
          report.cleaning.push(op.id);
          reconcileLog.warn({ operation: op.id, server: op.resourceId, closedAs: wf.status }, 'create closed unfinished: cleaning up');
        } else if (op.workflowType && op.workflowArgs) {
          const runId = await startOperationWorkflow(temporal, ref, op.workflowType, op.workflowArgs);
          await operations.setRunId(db, op.id, runId);
          report.started.push(op.id);
          reconcileLog.warn({ operation: op.id, kind: op.kind, workflow: op.workflowId, was: wf.status ?? 'never started' }, 'operation had no running workflow: started it');
        } else {
          await operations.finish(db, op.id, {
            status: 'failed',
            error: { step: 'workflow', code: 'WorkflowLost', message: `no running workflow (${wf.status ?? 'never started'}) and none recorded to restart` },
          });
          report.failed.push(op.id);
        }
      }
      return report;
    },
  };
}

export type ReconcileControlActivities = ReturnType<typeof createReconcileControlActivities>;
