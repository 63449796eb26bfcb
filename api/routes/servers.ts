/**
 * Nova's routes: servers, their actions, console and volume attachments. Everything a request
 * refers to is checked here, before any workflow starts, so bad input is a 4xx naming the field and
 * nothing is created; then the operation's workflow does the work and the call answers 202.
 */
import { randomUUID } from 'node:crypto';
import { Router, type Request } from 'express';
import type { Knex } from 'knex';
import { Conflict, InvalidInput, NotFound } from '../../core/errors';
import { uuidFrom } from '../../db/ids';
import * as flavors from '../../db/repositories/flavors';
import * as networks from '../../db/repositories/networks';
import * as operations from '../../db/repositories/operations';
import * as ports from '../../db/repositories/ports';
import * as servers from '../../db/repositories/servers';
import * as volumes from '../../db/repositories/volumes';
import type { QuotaLimits } from '../../db/repositories/quotas';
import * as serverGroups from '../../db/repositories/server-groups';
import { checkPlacementRequest, holdServerRequest } from '../../services/server-requests';
import { assertImageUsable } from '../../activities/image/control';
import { domainNameFor } from '../../activities/compute/types';
import { deviceFor } from '../../activities/storage/control';
import type { components } from '../../openapi/types';
import { CONDUCTOR_TASK_QUEUE } from '../../temporal/constants';
import { OPERATIONS } from '../../workflows/catalog';
import type { CreateServerInput } from '../../workflows/create-server';
import { hasRole, type AuthContext, type IdentityService } from '../../services/identity';
import { authenticate, callerOf, requireWriter } from '../auth';
import { launchOperation, operationProgress, presentOperation, recordOperation, startOperation, type OperationDeps } from '../operations';
import { pageQuery } from '../pagination';

type Schemas = components['schemas'];
export type CreateBody = {
  name: string;
  flavor_id: string;
  image_id: string;
  networks?: Array<{ network_id?: string; port_id?: string; fixed_ip?: string }>;
  volumes?: Array<{ volume_id?: string; size_gb?: number; delete_on_termination?: boolean }>;
  metadata?: Record<string, string>;
  availability_zone?: string;
  group_id?: string;
};

/** A server id derived from (project, Idempotency-Key): the same key always names the same server. */
export function serverIdForKey(projectId: string, key: string): string {
  return uuidFrom(projectId, key);
}

const CONSOLE_POLL_MS = 1000;
const STREAM_WINDOW_BYTES = 1024 * 1024;

/** The catalog entry of each power action (its task_state is set by the API when it accepts the action). */
const ACTION_OPERATION = { start: 'serverStart', stop: 'serverStop', reboot: 'serverReboot' } as const;

/** Checks every reference of a create request; throws 400/404/409 naming the field. */
export async function resolveCreate(db: Knex, auth: AuthContext, body: CreateBody, fieldPrefix = 'body'): Promise<Omit<CreateServerInput, 'serverId' | 'operationId'>> {
  const flavor = await flavors.get(db, body.flavor_id);
  if (!flavor || (!flavor.isPublic && !hasRole(auth, 'admin'))) {
    throw new InvalidInput(`flavor ${body.flavor_id} does not exist`, [{ field: `${fieldPrefix}.flavor_id`, message: 'no such flavor' }]);
  }
  await assertImageUsable(db, { imageId: body.image_id, projectId: auth.project.id, flavor });

  const networkRequests: CreateServerInput['networks'] = [];
  for (const [i, n] of (body.networks ?? []).entries()) {
    const field = `${fieldPrefix}.networks[${i}]`;
    if (Boolean(n.network_id) === Boolean(n.port_id)) {
      throw new InvalidInput('give either network_id or port_id', [{ field, message: 'needs exactly one of network_id, port_id' }]);
    }
    if (n.port_id) {
      const port = await ports.get(db, n.port_id);
      if (!port || port.projectId !== auth.project.id) {
        throw new InvalidInput(`port ${n.port_id} does not exist`, [{ field: `${field}.port_id`, message: 'no such port' }]);
      }
      if (port.deviceId) throw new Conflict(`port ${n.port_id} is in use by server ${port.deviceId}`, [{ field: `${field}.port_id`, message: 'in use' }]);
      networkRequests.push({ portId: port.id });
    } else if (n.network_id) {
      const network = await networks.get(db, n.network_id);
      if (!network || network.projectId !== auth.project.id) {
        throw new InvalidInput(`network ${n.network_id} does not exist`, [{ field: `${field}.network_id`, message: 'no such network' }]);
      }
      networkRequests.push({ networkId: network.id, ...(n.fixed_ip ? { fixedIp: n.fixed_ip } : {}) });
    }
  }

  const volumeRequests: CreateServerInput['volumes'] = [];
  for (const [i, v] of (body.volumes ?? []).entries()) {
    const field = `${fieldPrefix}.volumes[${i}]`;
    if (Boolean(v.volume_id) === Boolean(v.size_gb)) {
      throw new InvalidInput('give either volume_id or size_gb', [{ field, message: 'needs exactly one of volume_id, size_gb' }]);
    }
    if (v.volume_id) {
      const volume = await volumes.get(db, v.volume_id);
      if (!volume || volume.projectId !== auth.project.id || volume.status === 'deleted') {
        throw new InvalidInput(`volume ${v.volume_id} does not exist`, [{ field: `${field}.volume_id`, message: 'no such volume' }]);
      }
      if (volume.status !== 'available') {
        throw new Conflict(`volume ${v.volume_id} is ${volume.status}, not available`, [{ field: `${field}.volume_id`, message: volume.status }]);
      }
      volumeRequests.push({ volumeId: volume.id });
    } else if (v.size_gb) {
      volumeRequests.push({ sizeGb: v.size_gb, deleteOnTermination: v.delete_on_termination ?? false });
    }
  }
  return {
    projectId: auth.project.id,
    userId: auth.user.id,
    flavor: { id: flavor.id, name: flavor.name, vcpus: flavor.vcpus, ramMb: flavor.ramMb, diskGb: flavor.diskGb },
    imageId: body.image_id,
    networks: networkRequests,
    volumes: volumeRequests,
  };
}

export function serversRouter(deps: OperationDeps & { identity: IdentityService; quotaDefaults: QuotaLimits }): Router {
  const { db } = deps;
  const router = Router();
  router.use(['/v1/servers', '/v1/operations'], authenticate(deps.identity));

  /** The caller's server, or 404 (another project's server does not exist for them). */
  async function visibleServer(auth: AuthContext, id: string): Promise<servers.Server> {
    const server = await servers.get(db, id);
    if (!server || server.status === 'DELETED' || (server.projectId !== auth.project.id && !hasRole(auth, 'admin'))) {
      throw new NotFound(`server ${id} not found`);
    }
    return server;
  }


  async function present(auth: AuthContext, server: servers.Server, withProgress: boolean): Promise<Schemas['Server']> {
    const [flavor, serverPorts, serverVolumes, ops, group] = await Promise.all([
      server.flavorId ? flavors.get(db, server.flavorId) : null,
      ports.listByDevice(db, server.id),
      volumes.list(db, { limit: 100, serverId: server.id }),
      operations.listByResource(db, server.id),
      serverGroups.groupOf(db, server.id),
    ]);
    const latest = ops[ops.length - 1];
    const busy = server.status === 'BUILD' || server.taskState !== null;
    const progress = withProgress && busy && latest ? await operationProgress(deps, latest) : null;
    const self = `${deps.config.api.publicUrl}/v1/servers/${server.id}`;
    return {
      id: server.id,
      name: server.name,
      status: server.status,
      task_state: server.taskState,
      power_state: server.powerState,
      ...(hasRole(auth, 'admin') ? { host: server.host } : {}),
      flavor: flavor
        ? { id: flavor.id, name: flavor.name, vcpus: flavor.vcpus, ram_mb: flavor.ramMb, disk_gb: flavor.diskGb }
        : { id: server.flavorId ?? '00000000-0000-0000-0000-000000000000', name: '(deleted)', vcpus: 0, ram_mb: 0, disk_gb: 0 },
      image_id: server.imageId,
      addresses: serverPorts.map((p) => ({ network_id: p.networkId, port_id: p.id, ip: p.fixedIp, mac_address: p.mac })),
      volumes_attached: serverVolumes.items
        .filter((v) => v.status !== 'deleted' && v.status !== 'deleting')
        .map((v) => ({ id: v.id, device: v.device })),
      metadata: server.metadata,
      fault: server.fault,
      batch_id: server.batchId,
      progress,
      availability_zone: server.availabilityZone,
      group_id: group?.id ?? null,
      ...(hasRole(auth, 'admin') ? { placement: server.placement } : {}),
      created_at: server.createdAt.toISOString(),
      updated_at: server.updatedAt.toISOString(),
      links: {
        self,
        ...(latest ? { operation: `${deps.config.api.publicUrl}/v1/operations/${latest.id}` } : {}),
        ...(latest ? { temporal_ui: (await presentOperation(deps, latest, false)).links.temporal_ui } : {}),
      },
    };
  }

  /** When a task's workflow could not start: the server is idle again, and the error goes on. */
  function releaseTask(serverId: string) {
    return async (err: unknown): Promise<never> => {
      await servers.update(db, serverId, { taskState: null }).catch(() => undefined);
      throw err;
    };
  }

  router.post('/v1/servers', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as CreateBody;
    const key = req.get('idempotency-key');
    const serverId = key ? serverIdForKey(auth.project.id, key) : randomUUID();

    // A retried request with the same key: the same server and operation, never a second server; a
    // create whose workflow never started (the API crashed, Temporal was down) is started now.
    const replay = async (): Promise<boolean> => {
      const existing = key ? await servers.get(db, serverId) : null;
      let op = existing && (await operations.listByResource(db, serverId)).find((o) => o.kind === OPERATIONS.serverCreate.kind);
      if (!existing || !op || existing.projectId !== auth.project.id) return false;
      if (op.status === 'running' && !op.runId) op = await launchOperation(deps, op, 'keep');
      res.status(202).json({ server: await present(auth, existing, false), operation: await presentOperation(deps, op, false) });
      return true;
    };
    if (await replay()) return;

    const plan = await resolveCreate(db, auth, body);
    const placement = await checkPlacementRequest(db, auth, body);
    let server: servers.Server;
    let op: operations.Operation;
    try {
      // The server and its operation appear together, or not at all.
      [server, op] = await db.transaction(async (trx) => {
        // Quota first (it locks the project row): over quota is a 403 naming the resource, and nothing exists.
        await holdServerRequest(trx, { serverId, projectId: auth.project.id, plan, placement, quotaDefaults: deps.quotaDefaults });
        const row = await servers.create(trx, {
          id: serverId,
          projectId: auth.project.id,
          userId: auth.user.id,
          name: body.name,
          flavorId: plan.flavor.id,
          imageId: body.image_id,
          metadata: body.metadata ?? {},
          availabilityZone: placement.availabilityZone,
        });
        const recorded = await recordOperation(trx, {
          def: OPERATIONS.serverCreate,
          resourceId: serverId,
          projectId: auth.project.id,
          input: (operationId) => ({ ...plan, serverId, operationId }),
        });
        return [row, recorded] as const;
      });
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
    res.status(202).json({ server: await present(auth, server, false), operation: await presentOperation(deps, op, false) });
  });

  router.get('/v1/servers', async (req, res) => {
    const auth = callerOf(req);
    const batchId = typeof req.query.batch_id === 'string' ? { batchId: req.query.batch_id } : {};
    const page = await servers.list(db, { ...pageQuery(req), ...batchId, ...(hasRole(auth, 'admin') ? {} : { projectId: auth.project.id }) });
    res.json({ servers: await Promise.all(page.items.map((s) => present(auth, s, false))), next: page.next });
  });

  router.get('/v1/servers/:server_id', async (req, res) => {
    const auth = callerOf(req);
    res.json(await present(auth, await visibleServer(auth, param(req, 'server_id')), true));
  });

  router.delete('/v1/servers/:server_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const server = await visibleServer(auth, param(req, 'server_id'));
    const running = (await operations.listByResource(db, server.id)).find((o) => o.kind === OPERATIONS.serverDelete.kind && o.status === 'running');
    if (running) return void res.status(202).json({ operation: await presentOperation(deps, running, false) });
    // A server in BUILD: the delete cancels its create (whose undo runs to the end), then deletes.
    const building = server.status === 'BUILD';
    if (!building) {
      await servers.update(db, server.id, { taskState: 'deleting' }, { from: ['ACTIVE', 'SHUTOFF', 'ERROR'], idle: true }).catch((err: unknown) => {
        if (!(err instanceof Conflict)) throw err;
        throw new Conflict(`server ${server.id} is ${server.taskState ?? server.status}: wait for that to finish`);
      });
    }
    const start = startOperation(deps, {
      def: OPERATIONS.serverDelete,
      resourceId: server.id,
      projectId: server.projectId,
      input: (operationId) => ({ serverId: server.id, operationId, ...(building ? { cancelCreate: true } : {}) }),
    });
    const op = await (building ? start : start.catch(releaseTask(server.id)));
    res.status(202).json({ operation: await presentOperation(deps, op, false) });
  });

  router.post('/v1/servers/:server_id/action', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const server = await visibleServer(auth, param(req, 'server_id'));
    const { action } = req.body as { action: 'start' | 'stop' | 'reboot' };
    const allowedFrom = action === 'start' ? 'SHUTOFF' : 'ACTIVE';
    // Claim the server for this task in one conditional update: of two racing actions, one gets 409.
    await servers.update(db, server.id, { taskState: OPERATIONS[ACTION_OPERATION[action]].taskState }, { from: [allowedFrom], idle: true }).catch((err: unknown) => {
      if (!(err instanceof Conflict)) throw err;
      throw new Conflict(`cannot ${action} server ${server.id} while it is ${server.taskState ?? server.status}`, [
        { field: 'body.action', message: `needs a ${allowedFrom} server with no task in progress` },
      ]);
    });
    const op = await startOperation(deps, {
      def: OPERATIONS[ACTION_OPERATION[action]],
      resourceId: server.id,
      projectId: server.projectId,
      input: (id) => ({ serverId: server.id, operationId: id, action }),
    }).catch(releaseTask(server.id));
    res.status(202).json({ operation: await presentOperation(deps, op, false) });
  });

  /** The serial console's tail, read on the server's host through a short workflow (the API never calls libvirt). */
  async function readConsole(server: servers.Server, maxBytes: number): Promise<string> {
    if (!server.host) throw new Conflict(`server ${server.id} has no host yet`);
    const output = await deps.temporal.workflow.execute('serverConsole', {
      workflowId: `server:${server.id}:console:${randomUUID()}`,
      taskQueue: CONDUCTOR_TASK_QUEUE,
      args: [{ host: server.host, domainName: domainNameFor(server.id), maxBytes }],
      workflowExecutionTimeout: '30 seconds',
    });
    return String(output);
  }

  router.get('/v1/servers/:server_id/console', async (req, res) => {
    const auth = callerOf(req);
    const server = await visibleServer(auth, param(req, 'server_id'));
    res.json({ output: await readConsole(server, Number(req.query.max_bytes ?? 65536)) });
  });

  /**
   * The console, live, as server-sent events: each event's data is a JSON string of new console
   * output. Polls the host once a second; ends when the client goes away or after 10 minutes.
   */
  router.get('/v1/servers/:server_id/console/stream', async (req, res) => {
    const auth = callerOf(req);
    const server = await visibleServer(auth, param(req, 'server_id'));
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
    const server = await visibleServer(auth, param(req, 'server_id'));
    const volumeId = (req.body as { volume_id: string }).volume_id;
    const volume = await volumes.get(db, volumeId);
    if (!volume || volume.projectId !== server.projectId || volume.status === 'deleted') {
      throw new NotFound(`volume ${volumeId} not found`, [{ field: 'body.volume_id', message: 'no such volume' }]);
    }
    if ((server.status !== 'ACTIVE' && server.status !== 'SHUTOFF') || server.taskState !== null || !server.host) {
      throw new Conflict(`server ${server.id} is ${server.taskState ?? server.status}: volumes attach to ACTIVE or SHUTOFF servers`);
    }
    if (volume.host && volume.host !== server.host) {
      throw new Conflict(`volume ${volumeId} lives on host ${volume.host}, the server on another host`, [
        { field: 'body.volume_id', message: 'on another host' },
      ]);
    }
    const attached = await volumes.list(db, { limit: 100, serverId: server.id });
    const used = new Set(attached.items.map((v) => v.device));
    let index = 0;
    while (used.has(deviceFor(index))) index += 1;
    const device = deviceFor(index);
    // Cinder's state machine, enforced by the database: only one request can reserve the volume.
    await volumes.transition(db, volumeId, { from: ['available'], to: 'reserved', set: { serverId: server.id, device } });
    try {
      const host = server.host;
      const op = await startOperation(deps, {
        def: OPERATIONS.volumeAttach,
        resourceId: volumeId,
        projectId: server.projectId,
        input: (id) => ({ volumeId, serverId: server.id, host, device, operationId: id }),
      });
      res.status(202).json({ operation: await presentOperation(deps, op, false) });
    } catch (err) {
      await volumes.transition(db, volumeId, { from: ['reserved'], to: 'available', set: { serverId: null, device: null } });
      throw err;
    }
  });

  router.delete('/v1/servers/:server_id/volumes/:volume_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const server = await visibleServer(auth, param(req, 'server_id'));
    const volumeId = param(req, 'volume_id');
    const volume = await volumes.get(db, volumeId);
    if (!volume || volume.serverId !== server.id) throw new NotFound(`volume ${volumeId} is not attached to server ${server.id}`);
    if (server.taskState !== null || !server.host) throw new Conflict(`server ${server.id} is ${server.taskState ?? server.status}`);
    await volumes.transition(db, volumeId, { from: ['in-use'], to: 'detaching' });
    try {
      const host = server.host;
      const op = await startOperation(deps, {
        def: OPERATIONS.volumeDetach,
        resourceId: volumeId,
        projectId: server.projectId,
        input: (id) => ({ volumeId, serverId: server.id, host, operationId: id }),
      });
      res.status(202).json({ operation: await presentOperation(deps, op, false) });
    } catch (err) {
      await volumes.transition(db, volumeId, { from: ['detaching'], to: 'in-use' });
      throw err;
    }
  });

  router.get('/v1/operations/:operation_id', async (req, res) => {
    const auth = callerOf(req);
    const op = await operations.get(db, param(req, 'operation_id'));
    if (!op || (op.projectId !== auth.project.id && !hasRole(auth, 'admin'))) throw new NotFound(`operation ${req.params.operation_id} not found`);
    res.json(await presentOperation(deps, op));
  });

  return router;
}

function param(req: Request, name: string): string {
  return req.params[name] as string;
}
