/**
 * Compute (Nova's compute/api.py): the rules of servers between the REST front and the conductor.
 * Reads go through the visibility rule; a page of servers is read with its relations (flavor, ports,
 * volumes, latest operation, group) in one query, so a list costs the same whatever its length; a
 * create request's references are checked here, before any workflow starts, so bad input is a 4xx
 * naming the field and nothing is created.
 */
import { createHash } from 'node:crypto';
import { WithStartWorkflowOperation, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Knex } from 'knex';
import { domainNameFor } from '../activities/compute/types';
import { Conflict, InvalidInput, NotFound, ServiceUnavailable } from '../core/errors';
import * as flavors from '../db/repositories/flavors';
import * as hosts from '../db/repositories/hosts';
import * as networks from '../db/repositories/networks';
import * as operations from '../db/repositories/operations';
import * as ports from '../db/repositories/ports';
import type { QuotaLimits } from '../db/repositories/quotas';
import * as servers from '../db/repositories/servers';
import * as volumes from '../db/repositories/volumes';
import type { Page, PageRequest } from '../db/types';
import type { operations as ApiOperations } from '../openapi/types';
import type { ConductorClient } from '../temporal/start-operation';
import { CONSOLE_HOST_UNAVAILABLE, CONSOLE_READ_FAILED, consoleReadUpdate, consoleSessionWorkflowId, type ConsoleChunk, type ConsoleReadRequest, type ConsoleSessionInput } from '../workflows/console-contract';
import { serverConsoleSession } from '../workflows/console-session';
import type { CreateServerInput } from '../workflows/create-server';
import { hasRole, type AuthContext } from './identity';
import { assertImageUsable } from './images';
import type { ServerQuotaPlan } from './quotas';
import { checkPlacementRequest, holdServerRequest, releaseServerRequest, type PlacementRequest } from './server-requests';
import { canSee, listScope, visibleOr404 } from './visibility';
import { firstFreeDevice } from './volumes';

export type Server = servers.Server;
export type { QuotaLimits };
export type { ChangeFeed } from '../db/change-feed';
export { domainNameFor };
export type CreateServerBody = ApiOperations['createServer']['requestBody']['content']['application/json'];

/** A server with everything its presentation shows (read with it in one query). */
export type ServerDetails = servers.ServerWithRelations;

/** See ComputeService.viewExtras. */
export interface ServerViewExtras {
  networkNames: Map<string, string>;
  hostZones: Map<string, string>;
  launchedAt: Map<string, Date>;
}

/**
 * What of servers a caller sees, as a string: callers with the same view are shown the same servers
 * with the same fields (a project's members their project's; admins every project's, with host and
 * placement). Part of the key of a kept response (api/response-cache.ts).
 */
export function serverViewOf(auth: AuthContext): string {
  return hasRole(auth, 'admin') ? 'admin' : `project:${auth.project.id}`;
}

/** A server id derived from (project, Idempotency-Key): the same key always names the same server. */
export function serverIdForKey(projectId: string, key: string): string {
  const h = createHash('sha256').update(`${projectId}\0${key}`).digest('hex');
  // Shaped as a version-5-style UUID (variant bits set) so it passes uuid validation everywhere.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** How long a console read may take in all (a host that does not answer fails it after 20 s). */
const CONSOLE_READ_DEADLINE_MS = 30_000;

export type { ConsoleChunk };

/**
 * Console reads (the API never calls a host): each is an Update of the server's console session
 * workflow, started by the read if none runs (workflows/console-session.ts), so a stream's polls and
 * concurrent readers share one workflow instead of starting one each. Identical reads on their way
 * from this process share one Update (Temporal admits 10 updates in flight per workflow by default).
 * A read that meets its session as that ends (idle, or continuing as new) is retried by the client
 * (gRPC UNAVAILABLE / RESOURCE_EXHAUSTED) and starts the next run.
 */
export function createConsoleService({ client: temporal, taskQueue }: ConductorClient, options: { idleSeconds: number; readsPerRun?: number }) {
  const pending = new Map<string, Promise<ConsoleChunk>>();

  async function update(serverId: string, read: ConsoleReadRequest): Promise<ConsoleChunk> {
    const input: ConsoleSessionInput = { serverId, idleSeconds: options.idleSeconds, ...(options.readsPerRun ? { readsPerRun: options.readsPerRun } : {}) };
    try {
      return await temporal.withDeadline(Date.now() + CONSOLE_READ_DEADLINE_MS, () =>
        temporal.workflow.executeUpdateWithStart(consoleReadUpdate, {
          args: [read],
          startWorkflowOperation: new WithStartWorkflowOperation(serverConsoleSession, {
            workflowId: consoleSessionWorkflowId(serverId),
            taskQueue,
            args: [input],
            workflowIdConflictPolicy: 'USE_EXISTING',
          }),
        }),
      );
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure && CONSOLE_FAILURES.has(err.cause.type ?? '')) {
        throw new ServiceUnavailable(err.cause.message);
      }
      if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) {
        throw new ServiceUnavailable(`the console of server ${serverId} could not be read within ${CONSOLE_READ_DEADLINE_MS / 1000} s`);
      }
      throw err;
    }
  }

  return {
    /** The console's tail (`maxBytes`), or what it gained since an earlier chunk's `end`. */
    async read(server: servers.Server, req: { maxBytes: number; since?: number }): Promise<ConsoleChunk> {
      if (!server.host) throw new Conflict(`server ${server.id} has no host yet`);
      const read: ConsoleReadRequest = { host: server.host, domainName: domainNameFor(server.id), ...req };
      const key = JSON.stringify([server.id, read.host, read.maxBytes, read.since ?? null]);
      const shared = pending.get(key);
      if (shared) return shared;
      const answer = update(server.id, read).finally(() => pending.delete(key));
      pending.set(key, answer);
      return answer;
    },
  };
}

/** Read failures the session reports (the host's, not the caller's). */
const CONSOLE_FAILURES = new Set([CONSOLE_HOST_UNAVAILABLE, CONSOLE_READ_FAILED]);

export function createComputeService(db: Knex) {
  const visibleServer = (auth: AuthContext, id: string, server: servers.Server | null | undefined) =>
    visibleOr404(auth, server, { kind: 'server', id, gone: (s) => s.status === 'DELETED' });

  /** The relations of servers already read: one query whatever their number. */
  const details = (list: readonly servers.Server[]): Promise<ServerDetails[]> => servers.withRelations(db, list);

  /** The caller's server, or 404 (another project's server, or a deleted one, does not exist for them). */
  async function get(auth: AuthContext, id: string): Promise<servers.Server> {
    return visibleServer(auth, id, await servers.get(db, id));
  }

  return {
    get,
    details,

    /** The caller's server with its relations (one query), or 404 as `get`. */
    async show(auth: AuthContext, id: string): Promise<ServerDetails> {
      const found = await servers.getWithRelations(db, id);
      visibleServer(auth, id, found?.server);
      return found!;
    },

    /**
     * The caller's servers (admins: every project's), optionally only one batch's members, or those
     * whose name contains `nameContains` or in `status`.
     */
    async list(auth: AuthContext, page: PageRequest & Pick<servers.ServerListFilter, 'batchId' | 'nameContains' | 'status'>): Promise<Page<ServerDetails>> {
      return servers.listWithRelations(db, { ...page, ...listScope(auth) });
    },

    /**
     * What OpenStack's server view shows beyond the details (three queries whatever the page's
     * length): the names of the networks of their ports, the zones of their hosts, and when each
     * server's create succeeded (Nova's launched_at).
     */
    async viewExtras(list: readonly ServerDetails[]): Promise<ServerViewExtras> {
      const [nets, zones, launched] = await Promise.all([
        networks.getMany(db, list.flatMap((d) => d.ports.map((p) => p.networkId))),
        hosts.zonesOf(db, list.flatMap((d) => (d.server.host ? [d.server.host] : []))),
        operations.succeededAt(db, list.map((d) => d.server.id), 'server.create'),
      ]);
      return { networkNames: new Map([...nets.values()].map((n) => [n.id, n.name])), hostZones: zones, launchedAt: launched };
    },

    /** The availability zones servers can be placed in, each with its hosts (Nova's os-availability-zone). */
    availabilityZones: () => hosts.zones(db),

    /** Every operation on the caller's server, oldest first. */
    async operationsOf(auth: AuthContext, serverId: string): Promise<operations.Operation[]> {
      const server = await get(auth, serverId);
      return operations.listByResource(db, server.id);
    },

    /** The server an Idempotency-Key already created in the caller's project, with its create operation; null if none. */
    async replayOf(auth: AuthContext, serverId: string): Promise<{ server: servers.Server; operation: operations.Operation } | null> {
      const existing = await servers.get(db, serverId);
      if (!existing || existing.projectId !== auth.project.id) return null;
      const op = (await operations.listByResource(db, serverId)).find((o) => o.kind === 'server.create');
      return op ? { server: existing, operation: op } : null;
    },

    /** The running delete of a server, if one is under way. */
    async runningDelete(serverId: string): Promise<operations.Operation | null> {
      return (await operations.listByResource(db, serverId)).find((o) => o.kind === 'server.delete' && o.status === 'running') ?? null;
    },

    /** The operation, or 404 unless the caller may see it. */
    async operation(auth: AuthContext, id: string): Promise<operations.Operation> {
      const op = await operations.get(db, id);
      if (!op || !canSee(auth, op.projectId)) throw new NotFound(`operation ${id} not found`);
      return op;
    },

    /** Checks every reference of a create request; throws 400/404/409 naming the field. */
    async resolveCreate(auth: AuthContext, body: CreateServerBody): Promise<Omit<CreateServerInput, 'serverId' | 'operationId'>> {
      const flavor = await flavors.get(db, body.flavor_id);
      if (!flavor || (!flavor.isPublic && !hasRole(auth, 'admin'))) {
        throw new InvalidInput(`flavor ${body.flavor_id} does not exist`, [{ field: 'body.flavor_id', message: 'no such flavor' }]);
      }
      await assertImageUsable(db, { imageId: body.image_id, projectId: auth.project.id, flavor });

      const networkRequests: CreateServerInput['networks'] = [];
      for (const [i, n] of (body.networks ?? []).entries()) {
        const field = `body.networks[${i}]`;
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
        const field = `body.volumes[${i}]`;
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
    },

    /**
     * Checks that `volumeId` may be attached to `server` and picks its device (the first free one).
     * Throws 404 naming body.volume_id, or 409.
     */
    async planAttach(server: servers.Server, volumeId: string): Promise<{ volume: volumes.Volume; device: string; host: string }> {
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
      const attached = (await volumes.listByServers(db, [server.id])).get(server.id) ?? [];
      return { volume, device: firstFreeDevice(attached.map((v) => v.device)), host: server.host };
    },

    /**
     * Inserts the server (BUILD) and, in the same transaction, what `alongside` records (its operation):
     * both appear, or neither.
     */
    async createRecord<T>(
      auth: AuthContext,
      serverId: string,
      body: CreateServerBody,
      hold: { plan: ServerQuotaPlan; placement: PlacementRequest; quotaDefaults: QuotaLimits },
      alongside: (trx: Knex.Transaction) => Promise<T>,
    ): Promise<[servers.Server, T]> {
      return db.transaction(async (trx) => {
        // Quota first (it locks the project row): over quota is a 403 naming the resource, and nothing exists.
        await holdServerRequest(trx, { serverId, projectId: auth.project.id, ...hold });
        const row = await servers.create(trx, {
          availabilityZone: hold.placement.availabilityZone,
          id: serverId,
          projectId: auth.project.id,
          userId: auth.user.id,
          name: body.name,
          flavorId: body.flavor_id,
          imageId: body.image_id,
          metadata: body.metadata ?? {},
        });
        return [row, await alongside(trx)];
      });
    },

    /** A create whose workflow never started: the server never existed for users, and holds nothing. */
    async abandonCreate(serverId: string): Promise<void> {
      await servers.markDeleted(db, serverId).catch(() => undefined);
      await releaseServerRequest(db, serverId).catch(() => undefined);
    },

    /** The availability zone and server group a create asks for, checked (400/404 naming the field). */
    checkPlacement: (auth: AuthContext, body: CreateServerBody) => checkPlacementRequest(db, auth, body),

    /**
     * Claims the server for a task (Nova's task_state) in one conditional update: it must be in one of
     * `from` with no task in progress, so of two racing requests one gets the Conflict `busy` builds.
     */
    async claimTask(server: servers.Server, taskState: string, from: readonly servers.ServerStatus[], busy: () => Conflict): Promise<void> {
      await servers.update(db, server.id, { taskState }, { from, idle: true }).catch((err: unknown) => {
        throw err instanceof Conflict ? busy() : err;
      });
    },

    /** The task's workflow could not start: the server is idle again. */
    async releaseTask(serverId: string): Promise<void> {
      await servers.update(db, serverId, { taskState: null }).catch(() => undefined);
    },

    /** Cinder's state machine, enforced by the database: moves the volume from one of `from` to `to`. */
    async transitionVolume(volumeId: string, t: volumes.VolumeTransition): Promise<void> {
      await volumes.transition(db, volumeId, t);
    },

    /** Checks that `volumeId` is attached to `server` and may be detached now. Throws 404 or 409. */
    async planDetach(server: servers.Server, volumeId: string): Promise<{ volume: volumes.Volume; host: string }> {
      const volume = await volumes.get(db, volumeId);
      if (!volume || volume.serverId !== server.id) throw new NotFound(`volume ${volumeId} is not attached to server ${server.id}`);
      if (server.taskState !== null || !server.host) throw new Conflict(`server ${server.id} is ${server.taskState ?? server.status}`);
      return { volume, host: server.host };
    },
  };
}

export type ComputeService = ReturnType<typeof createComputeService>;
