/**
 * Nova's routes: servers, their actions, console and volume attachments. Each route parses, asks the
 * compute service (services/compute.ts: the rules, checked before any workflow starts, so bad input
 * is a 4xx naming the field and nothing is created), starts the operation's workflow and answers 202.
 */
import { randomUUID } from 'node:crypto';
import { Router, type Request } from 'express';
import { Conflict } from '../../core/errors';
import { OPERATIONS } from '../../workflows/catalog';
import { createComputeService, readServerConsole, serverIdForKey, type CreateServerBody, type Server } from '../../services/compute';
import type { QuotaLimits } from '../../services/compute';
import type { AuthContext, IdentityService } from '../../services/identity';
import { authenticate, callerOf, requireWriter } from '../auth';
import type { JsonBody } from '../body';
import { launchOperation, presentOperation, recordOperation, startOperation, type OperationDeps } from '../operations';
import { pageQuery } from '../pagination';
import { presentServer } from '../presenters/servers';

export { serverIdForKey };

const CONSOLE_POLL_MS = 1000;
const STREAM_WINDOW_BYTES = 1024 * 1024;

/** The catalog entry of each power action (its task_state is set by the API when it accepts the action). */
const ACTION_OPERATION = { start: 'serverStart', stop: 'serverStop', reboot: 'serverReboot' } as const;

export function serversRouter(deps: OperationDeps & { identity: IdentityService; quotaDefaults: QuotaLimits }): Router {
  const compute = createComputeService(deps.db);
  const router = Router();
  router.use(['/v1/servers', '/v1/operations'], authenticate(deps.identity));

  const present = async (auth: AuthContext, server: Server) => presentServer(deps.config, auth, (await compute.details([server]))[0]!);

  /** When a task's workflow could not start: the server is idle again, and the error goes on. */
  function releaseTask(serverId: string) {
    return async (err: unknown): Promise<never> => {
      await compute.releaseTask(serverId);
      throw err;
    };
  }

  router.post('/v1/servers', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as CreateServerBody;
    const key = req.get('idempotency-key');
    const serverId = key ? serverIdForKey(auth.project.id, key) : randomUUID();

    // A retried request with the same key: the same server and operation, never a second server; a
    // create whose workflow never started (the API crashed, Temporal was down) is started now.
    const replay = async (): Promise<boolean> => {
      const found = key ? await compute.replayOf(auth, serverId) : null;
      if (!found) return false;
      // A create recorded but never started (its start failed): start it now.
      const op = found.operation.status === 'running' && !found.operation.runId ? await launchOperation(deps, found.operation, 'keep') : found.operation;
      res.status(202).json({ server: await present(auth, found.server), operation: await presentOperation(deps, op) });
      return true;
    };
    if (await replay()) return;

    const plan = await compute.resolveCreate(auth, body);
    const placement = await compute.checkPlacement(auth, body);
    let server: Server;
    let op;
    try {
      // The server and its operation appear together, or not at all.
      [server, op] = await compute.createRecord(auth, serverId, body, { plan, placement, quotaDefaults: deps.quotaDefaults }, (trx) =>
        recordOperation(trx, { def: OPERATIONS.serverCreate, resourceId: serverId, projectId: auth.project.id, input: (operationId) => ({ ...plan, serverId, operationId }) }),
      );
    } catch (err) {
      // Lost a race against the same Idempotency-Key: answer with the winner's server.
      if (err instanceof Conflict && key && (await replay())) return;
      throw err;
    }
    // The rows are the commitment: if the start fails (or its answer is lost), the server is not
    // given up (its workflow may be running): the reconciler, or a retry with the same
    // Idempotency-Key, starts it. The caller gets a 503 with Retry-After.
    op = await launchOperation(deps, op, 'keep');
    req.log.info({ server: serverId, operation: op.id }, 'server create accepted');
    res.status(202).json({ server: await present(auth, server), operation: await presentOperation(deps, op) });
  });

  router.get('/v1/servers', async (req, res) => {
    const auth = callerOf(req);
    const batchId = typeof req.query.batch_id === 'string' ? req.query.batch_id : undefined;
    const page = await compute.list(auth, { ...pageQuery(req), ...(batchId ? { batchId } : {}) });
    res.json({ servers: page.items.map((d) => presentServer(deps.config, auth, d)), next: page.next });
  });

  router.get('/v1/servers/:server_id', async (req, res) => {
    const auth = callerOf(req);
    res.json(presentServer(deps.config, auth, await compute.show(auth, param(req, 'server_id'))));
  });

  router.delete('/v1/servers/:server_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const server = await compute.get(auth, param(req, 'server_id'));
    const running = await compute.runningDelete(server.id);
    if (running) return void res.status(202).json({ operation: await presentOperation(deps, running) });
    // A server in BUILD: the delete cancels its create (whose undo runs to the end), then deletes.
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
    const op = await (building ? start : start.catch(releaseTask(server.id)));
    res.status(202).json({ operation: await presentOperation(deps, op) });
  });

  router.post('/v1/servers/:server_id/action', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const server = await compute.get(auth, param(req, 'server_id'));
    const { action } = req.body as JsonBody<'serverAction'>;
    const allowedFrom = action === 'start' ? 'SHUTOFF' : 'ACTIVE';
    // Of two racing actions, one gets 409.
    await compute.claimTask(server, OPERATIONS[ACTION_OPERATION[action]].taskState ?? action, [allowedFrom], () =>
      new Conflict(`cannot ${action} server ${server.id} while it is ${server.taskState ?? server.status}`, [
        { field: 'body.action', message: `needs a ${allowedFrom} server with no task in progress` },
      ]),
    );
    const op = await startOperation(deps, {
      def: OPERATIONS[ACTION_OPERATION[action]],
      resourceId: server.id,
      projectId: server.projectId,
      input: (id) => ({ serverId: server.id, operationId: id, action }),
    }).catch(releaseTask(server.id));
    res.status(202).json({ operation: await presentOperation(deps, op) });
  });

  const readConsole = (server: Server, maxBytes: number) => readServerConsole(deps.temporal, server, maxBytes);

  router.get('/v1/servers/:server_id/console', async (req, res) => {
    const auth = callerOf(req);
    const server = await compute.get(auth, param(req, 'server_id'));
    res.json({ output: await readConsole(server, Number(req.query.max_bytes ?? 65536)) });
  });

  /**
   * The console, live, as server-sent events: each event's data is a JSON string of new console
   * output. Polls the host once a second; ends when the client goes away or after 10 minutes.
   */
  router.get('/v1/servers/:server_id/console/stream', async (req, res) => {
    const auth = callerOf(req);
    const server = await compute.get(auth, param(req, 'server_id'));
    if (!server.host) throw new Conflict(`server ${server.id} has no host yet`);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    let closed = false;
    req.on('close', () => {
      closed = true;
    });
    const deadline = Date.now() + 10 * 60_000;
    let seen = '';
    while (!closed && Date.now() < deadline) {
      try {
        const output = await readConsole(server, STREAM_WINDOW_BYTES);
        // The log only grows; if the window slid past what we sent, send the window again.
        const fresh = output.startsWith(seen) ? output.slice(seen.length) : output;
        if (fresh) res.write(`data: ${JSON.stringify(fresh)}\n\n`);
        seen = output;
      } catch (err) {
        res.write(`event: error\ndata: ${JSON.stringify(err instanceof Error ? err.message : String(err))}\n\n`);
      }
      await new Promise((r) => setTimeout(r, CONSOLE_POLL_MS));
    }
    res.end();
  });

  router.post('/v1/servers/:server_id/volumes', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const server = await compute.get(auth, param(req, 'server_id'));
    const volumeId = (req.body as JsonBody<'attachVolume'>).volume_id;
    const { device, host } = await compute.planAttach(server, volumeId);
    // Cinder's state machine, enforced by the database: only one request can reserve the volume.
    await compute.transitionVolume(volumeId, { from: ['available'], to: 'reserved', set: { serverId: server.id, device } });
    try {
      const op = await startOperation(deps, {
        def: OPERATIONS.volumeAttach,
        resourceId: volumeId,
        projectId: server.projectId,
        input: (id) => ({ volumeId, serverId: server.id, host, device, operationId: id }),
      });
      res.status(202).json({ operation: await presentOperation(deps, op) });
    } catch (err) {
      await compute.transitionVolume(volumeId, { from: ['reserved'], to: 'available', set: { serverId: null, device: null } });
      throw err;
    }
  });

  router.delete('/v1/servers/:server_id/volumes/:volume_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const server = await compute.get(auth, param(req, 'server_id'));
    const volumeId = param(req, 'volume_id');
    const { host } = await compute.planDetach(server, volumeId);
    await compute.transitionVolume(volumeId, { from: ['in-use'], to: 'detaching' });
    try {
      const op = await startOperation(deps, {
        def: OPERATIONS.volumeDetach,
        resourceId: volumeId,
        projectId: server.projectId,
        input: (id) => ({ volumeId, serverId: server.id, host, operationId: id }),
      });
      res.status(202).json({ operation: await presentOperation(deps, op) });
    } catch (err) {
      await compute.transitionVolume(volumeId, { from: ['detaching'], to: 'in-use' });
      throw err;
    }
  });

  router.get('/v1/operations/:operation_id', async (req, res) => {
    const auth = callerOf(req);
    const op = await compute.operation(auth, param(req, 'operation_id'));
    res.json(await presentOperation(deps, op, true));
  });

  return router;
}

function param(req: Request, name: string): string {
  return req.params[name] as string;
}
