/**
 * Conductor activities of server batches: launching members (each an ordinary server created by the
 * ordinary create workflow), reading the batch's progress from the member rows, rolling members back
 * through the ordinary delete workflow, and finishing the batch.
 *
 * Every activity here is idempotent under re-run: member rows are keyed by (batch, index) with ids
 * derived from them, workflows are started with the id of their operation (a running one is reused,
 * a completed create is never run again), and every state change is a conditional update.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Knex } from 'knex';
import { Conflict } from '../../core/errors';
import { newId, uuidFrom } from '../../db/ids';
import * as batches from '../../db/repositories/batches';
import * as operations from '../../db/repositories/operations';
import * as serverGroups from '../../db/repositories/server-groups';
import * as servers from '../../db/repositories/servers';
import { startOperationWorkflow, type ConductorClient } from '../../temporal/start-operation';
import type { BatchTemplate } from '../../workflows/batch-contract';
import { OPERATIONS, type OperationDef } from '../../workflows/catalog';

export function memberServerId(batchId: string, index: number): string {
  return uuidFrom('batch-member', batchId, String(index));
}

/** The member's name: `{n}` in the pattern is its 1-based number. */
export function memberName(pattern: string, index: number): string {
  return pattern.replace(/\{n\}/g, String(index + 1));
}

export interface BatchActivitiesDeps {
  db: Knex;
  /** Starts the members' workflows (on the cloud's conductor task queue). */
  temporal?: ConductorClient;
}

export function createBatchActivities({ db, temporal }: BatchActivitiesDeps) {
  function conductor(): ConductorClient {
    if (!temporal) throw new Error('batch activities need a Temporal client');
    return temporal;
  }

  /** Starts a member operation's workflow from its row; a completed create is never started again. */
  async function startMemberWorkflow(op: operations.Operation): Promise<void> {
    try {
      const runId = await startOperationWorkflow(conductor(), op, op.workflowType ?? '', op.workflowArgs ?? [], undefined, 'ALLOW_DUPLICATE_FAILED_ONLY');
      await operations.setRunId(db, op.id, runId);
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      // The member's create already completed: nothing to run, and this operation never ran.
      await operations.finish(db, op.id, { status: 'succeeded' });
    }
  }

  /**
   * The running operation of `def` on the server (a re-run of this activity recorded it), or a new
   * one, recorded with its workflow's input so the reconciler can start it if this activity cannot.
   */
  async function operationFor<W extends OperationDef['workflow']>(
    def: OperationDef<W>,
    serverId: string,
    projectId: string,
    input: (operationId: string) => unknown,
  ): Promise<operations.Operation> {
    const running = (await operations.listByResource(db, serverId)).find((o) => o.kind === def.kind && o.status === 'running');
    if (running) return running;
    const id = newId();
    return operations.create(db, {
      id,
      kind: def.kind,
      resourceType: def.resourceType,
      resourceId: serverId,
      projectId,
      workflowId: def.workflowId(serverId, id),
      workflowType: def.workflow.name,
      workflowArgs: [input(id)],
    });
  }

  /** Waits (briefly) until the member's previous create run has closed, so a retry starts a new run. */
  async function previousRunClosed(workflowId: string): Promise<boolean> {
    for (let i = 0; i < 50; i += 1) {
      const status = await conductor()
        .client.workflow.getHandle(workflowId)
        .describe()
        .then((d) => d.status.name)
        .catch((err: unknown) => {
          if (err instanceof WorkflowNotFoundError) return 'NOT_FOUND';
          throw err;
        });
      if (status !== 'RUNNING') return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  }

  return {
    /**
     * Makes sure members `from` ≤ index < `to` exist and are being created: a missing member is
     * inserted and its create started; a member in ERROR is re-run on the same row (a retry); a
     * member in BUILD gets its create started if a crash came between the row and the start.
     * Members that are ACTIVE, SHUTOFF or DELETED are left alone. Returns how many creates it started.
     */
    async launchBatchMembers({ batchId, from, to }: { batchId: string; from: number; to: number }): Promise<{ started: number }> {
      const batch = await batches.get<BatchTemplate>(db, batchId);
      if (!batch) throw ApplicationFailure.nonRetryable(`batch ${batchId} is gone`, 'NotFound');
      const t = batch.template;
      let started = 0;
      for (let index = from; index < Math.min(to, batch.count); index += 1) {
        const serverId = memberServerId(batchId, index);
        let server = await servers.get(db, serverId);
        if (!server) {
          try {
            server = await db.transaction(async (trx) => {
              const row = await servers.create(trx, {
                id: serverId,
                projectId: batch.projectId,
                userId: batch.userId,
                name: memberName(batch.namePattern, index),
                flavorId: t.flavor.id,
                imageId: t.imageId,
                metadata: t.metadata,
                availabilityZone: t.availabilityZone ?? null,
                batch: { id: batchId, index },
              });
              // The member's quota is reserved by its own create (authenticate step): a batch counts member by member.
              if (t.groupId) await serverGroups.addMember(trx, t.groupId, serverId);
              return row;
            });
          } catch (err) {
            if (!(err instanceof Conflict)) throw err;
            server = await servers.get(db, serverId); // a re-run of this activity made it first
          }
        } else if (server.status === 'ERROR' && server.taskState === null && (await previousRunClosed(OPERATIONS.serverCreate.workflowId(serverId, '')))) {
          server = await servers.update(db, serverId, { status: 'BUILD', taskState: 'scheduling', fault: null }, { from: ['ERROR'], idle: true }).catch((err: unknown) => {
            if (err instanceof Conflict) return servers.get(db, serverId);
            throw err;
          });
        }
        if (server?.status !== 'BUILD') continue;
        const op = await operationFor(OPERATIONS.serverCreate, serverId, batch.projectId, (operationId) => ({
          serverId,
          projectId: batch.projectId,
          userId: batch.userId ?? '',
          operationId,
          flavor: t.flavor,
          imageId: t.imageId,
          networks: t.networks,
          volumes: t.volumes,
        }));
        await startMemberWorkflow(op);
        started += 1;
      }
      return { started };
    },

    /** Members by status, read from the member rows. */
    async batchProgress({ batchId }: { batchId: string }): Promise<batches.MemberCounts> {
      return batches.memberCounts(db, batchId);
    },

    /**
     * One round of rolling the batch back: starts the delete of up to `maxInFlight` members (with
     * `onlySucceeded`, not the ERROR ones), and returns how many of those are not DELETED yet. A member
     * in BUILD is deleted through its create's cancel; one busy with another task is left for later.
     */
    async deleteBatchMembers({ batchId, maxInFlight, onlySucceeded = false }: { batchId: string; maxInFlight: number; onlySucceeded?: boolean }): Promise<{ remaining: number }> {
      const members = await db('servers').where({ batch_id: batchId }).whereNot('status', 'DELETED').select('id', 'project_id', 'status', 'task_state');
      const victims = members.filter((m: { status: string }) => !onlySucceeded || m.status !== 'ERROR');
      const deleting = victims.filter((m: { task_state: string | null }) => m.task_state === 'deleting').length;
      let room = maxInFlight - deleting;
      for (const m of victims as Array<{ id: string; project_id: string; status: string; task_state: string | null }>) {
        if (room <= 0) break;
        // A member still being built: its delete cancels the create (whose undo runs to the end) first.
        const building = m.status === 'BUILD';
        if (!building) {
          if (m.task_state !== null) continue;
          try {
            await servers.update(db, m.id, { taskState: 'deleting' }, { from: ['ACTIVE', 'SHUTOFF', 'ERROR'], idle: true });
          } catch (err) {
            if (err instanceof Conflict) continue; // someone else is working on it
            throw err;
          }
        }
        const op = await operationFor(OPERATIONS.serverDelete, m.id, m.project_id, (operationId) => ({ serverId: m.id, operationId, ...(building ? { cancelCreate: true } : {}) }));
        await startOperationWorkflow(conductor(), op, op.workflowType ?? '', op.workflowArgs ?? []);
        room -= 1;
      }
      return { remaining: victims.length };
    },

    /** Ends the batch (and its operation) in its final status, from whatever running state it is in. */
    async finishBatch(req: { batchId: string; operationId: string; status: 'succeeded' | 'failed' | 'cancelled' | 'deleted'; fault?: batches.BatchFault }): Promise<void> {
      await db.transaction(async (trx) => {
        await batches.transition(trx, req.batchId, { from: ['running', 'cancelling', 'deleting'], to: req.status, fault: req.fault ?? null }).catch((err: unknown) => {
          if (!(err instanceof Conflict)) throw err; // already finished by an earlier attempt
        });
        const failed = req.status === 'failed' || req.status === 'cancelled';
        await operations.finish(trx, req.operationId, { status: failed ? 'failed' : 'succeeded', ...(failed && req.fault ? { error: { step: 'batch', ...req.fault } } : {}) });
      });
    },
  };
}

export type BatchActivities = ReturnType<typeof createBatchActivities>;
