/**
 * What a server request does once it is parsed, shared by every API that takes it (`/v1` in
 * routes/servers.ts, Nova v2.1 in openstack/nova.ts): each asks the compute service (the rules,
 * checked before any workflow starts), claims what the operation needs (a task_state, a volume's
 * state), records and starts the operation's workflow, and gives the claim back when the start
 * fails. The routers only translate their request and response shapes.
 */
import { randomUUID } from 'node:crypto';
import { Conflict } from '../core/errors';
import { OPERATIONS } from '../workflows/catalog';
import { serverIdForKey, type ComputeService, type CreateServerBody, type QuotaLimits, type Server } from '../services/compute';
import type { AuthContext } from '../services/identity';
import { requireWriter } from './auth';
import { launchOperation, recordOperation, startOperation, type OperationDeps } from './operations';

type Operation = Awaited<ReturnType<typeof startOperation>>;

export type PowerAction = 'start' | 'stop' | 'reboot';

/** The catalog entry of each power action (its task_state is set by the API when it accepts the action). */
const ACTION_OPERATION = { start: 'serverStart', stop: 'serverStop', reboot: 'serverReboot' } as const;

export interface ServerCommandDeps extends OperationDeps {
  quotaDefaults: QuotaLimits;
}

export function serverCommands(deps: ServerCommandDeps, compute: ComputeService) {
  /** When a task's workflow could not start: the server is idle again, and the error goes on. */
  function releaseTask(serverId: string) {
    return async (err: unknown): Promise<never> => {
      await compute.releaseTask(serverId);
      throw err;
    };
  }

  return {
    /**
     * Creates a server and starts its create workflow. With an Idempotency-Key, a retried request
     * gets the same server and operation (`replayed`), never a second server; a create recorded but
     * never started (the API crashed, Temporal was down) is started now.
     */
    async create(auth: AuthContext, body: CreateServerBody, key: string | undefined): Promise<{ server: Server; operation: Operation; replayed: boolean }> {
      requireWriter(auth);
      const serverId = key ? serverIdForKey(auth.project.id, key) : randomUUID();

      const replay = async () => {
        const found = key ? await compute.replayOf(auth, serverId) : null;
        if (!found) return null;
        const op = found.operation.status === 'running' && !found.operation.runId ? await launchOperation(deps, found.operation, 'keep') : found.operation;
        return { server: found.server, operation: op, replayed: true };
      };
      const replayed = await replay();
      if (replayed) return replayed;

      const plan = await compute.resolveCreate(auth, body);
      const placement = await compute.checkPlacement(auth, body);
      let server: Server;
      let op: Operation;
      try {
        // The server and its operation appear together, or not at all.
        [server, op] = await compute.createRecord(auth, serverId, body, { plan, placement, quotaDefaults: deps.quotaDefaults }, (trx) =>
          recordOperation(trx, { def: OPERATIONS.serverCreate, resourceId: serverId, projectId: auth.project.id, input: (operationId) => ({ ...plan, serverId, operationId }) }),
        );
      } catch (err) {
        // Lost a race against the same Idempotency-Key: answer with the winner's server.
        const winner = err instanceof Conflict && key ? await replay() : null;
        if (winner) return winner;
        throw err;
      }
      // The rows are the commitment: if the start fails (or its answer is lost), the server is not
      // given up (its workflow may be running): the reconciler, or a retry with the same
      // Idempotency-Key, starts it. The caller gets a 503 with Retry-After.
      op = await launchOperation(deps, op, 'keep');
      return { server, operation: op, replayed: false };
    },

    /**
     * Deletes a server: the running delete when one is under way; a server in BUILD has its create
     * cancelled (whose undo runs to the end), then deleted.
     */
    async remove(auth: AuthContext, serverId: string): Promise<Operation> {
      requireWriter(auth);
      const server = await compute.get(auth, serverId);
      const running = await compute.runningDelete(server.id);
      if (running) return running;
      const building = server.status === 'BUILD';
      if (!building) {
        await compute.claimTask(server, 'deleting', ['ACTIVE', 'SHUTOFF', 'ERROR'], () => new Conflict(`server ${server.id} is ${server.taskState ?? server.status}: wait for that to finish`));
      }
      const start = startOperation(deps, {
        def: OPERATIONS.serverDelete,
        resourceId: server.id,
        projectId: server.projectId,
        input: (operationId) => ({ serverId: server.id, operationId, ...(building ? { cancelCreate: true } : {}) }),
      });
      return building ? start : start.catch(releaseTask(server.id));
    },

    /** start (from SHUTOFF), stop or reboot (from ACTIVE); of two racing actions, one gets 409. */
    async power(auth: AuthContext, serverId: string, action: PowerAction): Promise<Operation> {
      requireWriter(auth);
      const server = await compute.get(auth, serverId);
      const allowedFrom = action === 'start' ? 'SHUTOFF' : 'ACTIVE';
      await compute.claimTask(server, OPERATIONS[ACTION_OPERATION[action]].taskState ?? action, [allowedFrom], () =>
        new Conflict(`cannot ${action} server ${server.id} while it is ${server.taskState ?? server.status}`, [
          { field: 'body.action', message: `needs a ${allowedFrom} server with no task in progress` },
        ]),
      );
      return startOperation(deps, {
        def: OPERATIONS[ACTION_OPERATION[action]],
        resourceId: server.id,
        projectId: server.projectId,
        input: (id) => ({ serverId: server.id, operationId: id, action }),
      }).catch(releaseTask(server.id));
    },

    /** Attaches the caller's volume at the first free device (the volume is reserved first: one request wins). */
    async attachVolume(auth: AuthContext, serverId: string, volumeId: string): Promise<{ operation: Operation; server: Server; device: string }> {
      requireWriter(auth);
      const server = await compute.get(auth, serverId);
      const { device, host } = await compute.planAttach(server, volumeId);
      // Cinder's state machine, enforced by the database: only one request can reserve the volume.
      await compute.transitionVolume(volumeId, { from: ['available'], to: 'reserved', set: { serverId: server.id, device } });
      try {
        const operation = await startOperation(deps, {
          def: OPERATIONS.volumeAttach,
          resourceId: volumeId,
          projectId: server.projectId,
          input: (id) => ({ volumeId, serverId: server.id, host, device, operationId: id }),
        });
        return { operation, server, device };
      } catch (err) {
        await compute.transitionVolume(volumeId, { from: ['reserved'], to: 'available', set: { serverId: null, device: null } });
        throw err;
      }
    },

    async detachVolume(auth: AuthContext, serverId: string, volumeId: string): Promise<Operation> {
      requireWriter(auth);
      const server = await compute.get(auth, serverId);
      const { host } = await compute.planDetach(server, volumeId);
      await compute.transitionVolume(volumeId, { from: ['in-use'], to: 'detaching' });
      try {
        return await startOperation(deps, {
          def: OPERATIONS.volumeDetach,
          resourceId: volumeId,
          projectId: server.projectId,
          input: (id) => ({ volumeId, serverId: server.id, host, operationId: id }),
        });
      } catch (err) {
        await compute.transitionVolume(volumeId, { from: ['detaching'], to: 'in-use' });
        throw err;
      }
    },
  };
}

export type ServerCommands = ReturnType<typeof serverCommands>;
