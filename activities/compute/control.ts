/**
 * Compute activities that run on the conductor (they touch the database): host registration and
 * liveness, the server record, scheduling (placement claims), operations and metering records.
 * Built by a factory from explicit dependencies so tests hand in their own database.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Knex } from 'knex';
import type { Logger } from '../../core/log';
import * as claims from '../../db/repositories/claims';
import { DEFAULT_QUOTAS } from '../../core/config';
import * as hosts from '../../db/repositories/hosts';
import * as images from '../../db/repositories/images';
import * as quotas from '../../db/repositories/quotas';
import * as serverGroups from '../../db/repositories/server-groups';
import * as meters from '../../db/repositories/meters';
import * as operations from '../../db/repositories/operations';
import * as projects from '../../db/repositories/projects';
import * as servers from '../../db/repositories/servers';
import * as users from '../../db/repositories/users';
import { meterHostWorkflowId, searchAttributes } from '../../temporal/constants';
import type { ConductorClient } from '../../temporal/start-operation';
import { demand, explainRejections, imageRequirements, schedule, type PlacementRequest } from '../../services/scheduler';
import { serverQuotaAmounts, type ServerQuotaPlan } from '../../services/quotas';
import { claimDecision, DEFAULT_PLACEMENT, loadHostStates, schedulerConfig, type PlacementSettings } from './placement';
import { metrics } from '../../core/metrics';
import * as flavors from '../../db/repositories/flavors';
import type { MeterHostInput } from '../metering/types';
import { Coalescer } from '../../core/coalesce';
import { domainNameFor, type Flavor } from './types';

/** What a host agent reports about itself on every heartbeat. */
export interface HostReport {
  name: string;
  libvirtUri: string;
  libvirtVersion: string;
  vcpus: number;
  ramMb: number;
  diskGb: number;
  capabilities: Record<string, unknown>;
}

/** How many alternates (and weights) a server's recorded placement keeps. */
const RECORDED_ALTERNATES = 10;

export interface ComputeControlDeps {
  db: Knex;
  /** To start and stop the long-running metering workflows (on the cloud's conductor task queue). */
  temporal?: ConductorClient;
  log: Logger;
  /** A host is schedulable while it is up (its monitor marks it down after 3 missed heartbeats) and its last heartbeat row is younger than 6 of these (db/repositories/hosts.ts isAlive). */
  heartbeatSeconds: number;
  /** Default allocation ratios and the RAM weigher (core/config.ts scheduler). */
  placement?: PlacementSettings;
  /** Default per-project limits (core/config.ts quotas). */
  quotaDefaults?: quotas.QuotaLimits;
  /** How often each server's meter samples it (STRATUS_METER_INTERVAL); default 60 s. */
  meterIntervalMs?: number;
}

export interface ServerStatePatch {
  serverId: string;
  status?: servers.ServerStatus;
  taskState?: string | null;
  powerState?: string | null;
  host?: string | null;
  fault?: { step: string; code: string; message: string } | null;
}

export function createComputeControlActivities(deps: ComputeControlDeps) {
  const { db, log, heartbeatSeconds, temporal, meterIntervalMs = 60_000 } = deps;
  /** Host samplers' wake-ups in flight, by sampler workflow id. */
  const wakes = new Coalescer();
  const placement = deps.placement ?? DEFAULT_PLACEMENT;
  const quotaDefaults = deps.quotaDefaults ?? DEFAULT_QUOTAS;
  const observeFinished = (op: operations.Operation) => {
    const outcome = op.status;
    const m = metrics();
    m.operations.inc({ kind: op.kind, outcome });
    m.operationDuration.observe({ kind: op.kind, outcome }, (op.updatedAt.getTime() - op.createdAt.getTime()) / 1000);
  };
  /**
   * The server's share of its project's quota, reserved (the API reserved it already when it
   * accepted the request: then this is a no-op). Lost race → QuotaExceeded naming the resource.
   */
  async function reserveServerQuota(req: { serverId: string; projectId: string } & ServerQuotaPlan): Promise<void> {
    await quotas
      .reserve(db, { projectId: req.projectId, ownerId: req.serverId, amounts: serverQuotaAmounts(req), defaults: quotaDefaults })
      .catch((err: unknown) => {
        if (err instanceof quotas.QuotaExceeded) throw ApplicationFailure.nonRetryable(err.message, 'QuotaExceeded', err.resource);
        throw err;
      });
  }
  return {
    /**
     * The user and project are still enabled. With `reserveQuota` (create flows since the
     * 'merged-conductor-steps' patch), the server's quota is then reserved too, as
     * reserveServerQuota does: one local activity instead of two.
     */
    async authenticateRequest({ userId, projectId, reserveQuota }: { userId: string; projectId: string; reserveQuota?: { serverId: string } & ServerQuotaPlan }): Promise<void> {
      const [user, project] = await Promise.all([users.getById(db, userId), projects.getById(db, projectId)]);
      if (!user?.enabled) throw ApplicationFailure.nonRetryable(`user ${userId} is disabled or gone`, 'NotAuthorized');
      if (!project?.enabled) throw ApplicationFailure.nonRetryable(`project ${projectId} is disabled or gone`, 'NotAuthorized');
      if (reserveQuota) await reserveServerQuota({ projectId, ...reserveQuota });
    },

    /** reserveServerQuota above, as the step older create runs call on its own. */
    reserveServerQuota,

    /** Gives the server's quota back (undo of the reservation; also on delete). Idempotent. */
    async releaseServerQuota({ serverId }: { serverId: string }): Promise<void> {
      await quotas.release(db, serverId);
    },

    /** The server's host and status, read only (DELETED included). */
    async serverSnapshot({ serverId }: { serverId: string }): Promise<{ host: string | null; status: string }> {
      const server = await servers.get(db, serverId);
      if (!server) throw ApplicationFailure.nonRetryable(`server ${serverId} does not exist`, 'NotFound');
      return { host: server.host, status: server.status };
    },

    /** Updates the server record and returns it (the delete flow reads the host from it). */
    async setServerState(patch: ServerStatePatch): Promise<{ host: string | null; status: string }> {
      const { serverId, ...changes } = patch;
      const server = await servers.update(db, serverId, changes);
      return { host: server.host, status: server.status };
    },

    /**
     * Placement (services/scheduler.ts): filter and weigh every host for the server's flavor, image,
     * availability zone and server group, then claim the best one (or an alternate) in the database,
     * where the filters run again on the locked rows. The decision, with its weights, is recorded on
     * the server. No host → NoValidHost naming every host and the filter that rejected it.
     */
    async claimHost(req: {
      serverId: string;
      flavor: Flavor;
      excludeHosts: string[];
      requiredHost?: string | null;
      lastFailure?: string;
      /** Written with the host (create flows since the 'merged-conductor-steps' patch): setServerState folded in. */
      taskState?: string;
    }): Promise<string> {
      const now = Date.now();
      const [server, group] = await Promise.all([servers.get(db, req.serverId), serverGroups.groupOf(db, req.serverId)]);
      const image = server?.imageId ? await images.get(db, server.imageId) : null;
      // Hosts a build of this server just failed on count as recent failures for every request.
      await hosts.recordBuildFailure(db, req.excludeHosts);
      const [states, members] = await Promise.all([
        loadHostStates(db, placement, heartbeatSeconds, now),
        group ? serverGroups.members(db, [group.id]) : Promise.resolve({} as Record<string, serverGroups.Member[]>),
      ]);
      const failure = req.lastFailure ? `${req.lastFailure}` : 'a host-side step failed';
      const request: PlacementRequest = {
        vcpus: req.flavor.vcpus,
        ramMb: req.flavor.ramMb,
        diskGb: req.flavor.diskGb,
        availabilityZone: server?.availabilityZone ?? null,
        ...(image ? { image: imageRequirements(image) } : {}),
        group: group
          ? {
              id: group.id,
              name: group.name,
              policy: group.policy,
              memberHosts: (members[group.id] ?? []).filter((m) => m.serverId !== req.serverId && m.host).map((m) => m.host!),
            }
          : null,
        excludeHosts: Object.fromEntries(req.excludeHosts.map((h) => [h, failure])),
        requiredHost: req.requiredHost ? { name: req.requiredHost, why: "where the server's volumes are" } : null,
      };
      const decision = schedule(states, request, schedulerConfig(placement), now);
      const claimed = await claimDecision(db, { serverId: req.serverId, request, decision, settings: placement, heartbeatSeconds });
      if (claimed.host) {
        // The top of the list is what decided (with 1,000 hosts the whole list would be a 100 kB write per server).
        const decided = {
          host: claimed.host,
          alternates: [decision.host, ...decision.alternates].filter((h) => h && h !== claimed.host).slice(0, RECORDED_ALTERNATES),
          weights: decision.weights.slice(0, RECORDED_ALTERNATES + 1),
          hosts_considered: states.length,
          ...(claimed.rejected.length > 0 ? { lost_claims: claimed.rejected } : {}),
          ...(group ? { group: { id: group.id, policy: group.policy } } : {}),
          ...(request.availabilityZone ? { availability_zone: request.availabilityZone } : {}),
        };
        // With a task state (create runs since 'merged-conductor-steps'), one write of the row: host, task state and placement.
        if (req.taskState !== undefined) await servers.update(db, req.serverId, { placement: decided, host: claimed.host, taskState: req.taskState });
        else await servers.setPlacement(db, req.serverId, decided);
        return claimed.host;
      }
      const rejected = [...decision.rejected, ...claimed.rejected];
      const wanted = demand(request);
      throw ApplicationFailure.nonRetryable(
        `no valid host for ${req.flavor.name} (${wanted.vcpus} vCPU, ${wanted.ramMb} MiB RAM, ${wanted.diskGb} GiB disk` +
          `${request.availabilityZone ? `, zone ${request.availabilityZone}` : ''}${group ? `, ${group.policy} group ${group.name}` : ''}) — ${explainRejections(rejected)}`,
        'NoValidHost',
        rejected,
      );
    },

    async releaseClaim({ serverId }: { serverId: string }): Promise<void> {
      await claims.release(db, serverId);
    },

    /** The server's final state and its operation's outcome, in one transaction. */
    async finishServerOperation(req: {
      server: ServerStatePatch;
      operationId: string;
      status: 'succeeded' | 'failed';
      error?: operations.OperationError;
    }): Promise<void> {
      const { serverId, ...changes } = req.server;
      await db.transaction(async (trx) => {
        if (changes.status === 'DELETED') await servers.markDeleted(trx, serverId);
        else await servers.update(trx, serverId, changes);
        // Quota: a created server's reservation becomes usage; a failed create or a delete gives it back.
        if (changes.status === 'ACTIVE') await quotas.commit(trx, serverId);
        if (changes.status === 'DELETED' || (changes.status === 'ERROR' && (await isCreate(trx, req.operationId)))) await quotas.release(trx, serverId);
        if (changes.status === 'DELETED') await serverGroups.removeMember(trx, serverId);
        return operations.finish(trx, req.operationId, { status: req.status, ...(req.error ? { error: req.error } : {}) });
      }).then(observeFinished);
    },

    /** The workflow's step progress, written into its operation's row (read by GET /v1/servers/{id} and /v1/operations/{id}). */
    async recordOperationProgress(req: { operationId: string; progress: unknown; seq: number }): Promise<void> {
      await operations.recordProgress(db, req.operationId, req.progress, req.seq);
    },

    /**
     * Finishes, as cancelled, a create of the server still recorded running whose workflow never
     * started (a delete got there first): nothing will start it later.
     */
    async abandonUnstartedCreate({ serverId, fault }: { serverId: string; fault: operations.OperationError }): Promise<void> {
      for (const op of await operations.listByResource(db, serverId)) {
        if (op.kind === 'server.create' && op.status === 'running') await operations.finish(db, op.id, { status: 'failed', error: fault });
      }
    },

    async finishOperation(req: { operationId: string; status: 'succeeded' | 'failed'; error?: operations.OperationError }): Promise<void> {
      observeFinished(await operations.finish(db, req.operationId, { status: req.status, ...(req.error ? { error: req.error } : {}) }));
    },

    /**
     * Records that metering began, with the allocation it meters (the server's flavor and host, copied
     * now), and makes sure its host's sampler runs: the sampler takes every meter's samples, so a
     * meter needs no workflow of its own (meters started before migration 0011 keep theirs).
     * The wake-up is coalesced per host (`wakes`): 50 creates finishing together send one or two
     * signals, each sent after the meters it covers were committed, never before.
     */
    async startMetering(req: { serverId: string; projectId: string; host?: string; flavor?: Flavor }): Promise<void> {
      if (!temporal) throw new Error('startMetering needs a Temporal client');
      const { serverId, projectId } = req;
      // The create flow passes the host and flavor it used; a call without them reads the server's.
      let host = req.host ?? null;
      let flavor: Pick<Flavor, 'vcpus' | 'ramMb' | 'diskGb'> | null = req.flavor ?? null;
      if (!host || !flavor) {
        const server = await servers.get(db, serverId);
        host = server?.host ?? null;
        flavor = server ? await flavors.get(db, server.flavorId) : null;
      }
      if (!host || !flavor) throw ApplicationFailure.nonRetryable(`server ${serverId} has no host or flavor to meter`, 'NotMeterable');
      const allocation = {
        projectId,
        host,
        domainName: domainNameFor(serverId),
        vcpus: flavor.vcpus,
        ramMb: flavor.ramMb,
        diskGb: flavor.diskGb,
        intervalMs: meterIntervalMs,
      };
      const meter = await meters.start(db, { serverId, allocation });
      if (meter.stoppedAt) return; // deleted meanwhile: nothing to meter
      const recorded = meter.allocation ?? allocation; // a retry keeps the first start's values
      const sampler = meterHostWorkflowId(recorded.host, recorded.intervalMs);
      // Start the host's sampler, or wake it so that it does not end as idle before it sees this meter.
      await wakes.run(sampler, async () => {
        await temporal.client.workflow.signalWithStart('meterHost', {
          workflowId: sampler,
          taskQueue: temporal.taskQueue,
          args: [{ hostName: recorded.host, intervalMs: recorded.intervalMs } satisfies MeterHostInput],
          signal: 'wake',
          signalArgs: [],
          typedSearchAttributes: [{ key: searchAttributes.operationKind, value: 'host.meter' }],
        });
      });
    },

    /**
     * Records that metering ended, with the final sample that marks the end (the delete flow calls
     * this once the domain is gone, so it has no reading). A meter started before migration 0011 has
     * its own workflow: it gets `stop` and writes the final sample itself. Absent or finished is fine.
     */
    async stopMetering({ serverId }: { serverId: string }): Promise<void> {
      const meter = await meters.stop(db, serverId);
      if (!meter) return;
      if (!meter.workflowId) {
        if (await meters.recordFinal(db, serverId, new Date(), null)) metrics().meterSamples.inc({ status: 'final' });
        return;
      }
      if (!temporal) return;
      await temporal.client.workflow
        .getHandle(meter.workflowId)
        .signal('stop')
        .catch((err: unknown) => {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        });
    },

    async recordHostHeartbeat(report: HostReport): Promise<void> {
      await hosts.upsertHeartbeat(db, report);
    },
    async markHostDown(hostName: string): Promise<void> {
      log.warn({ host: hostName }, 'host agent stopped heartbeating: marking host down');
      await hosts.markDown(db, hostName);
    },
  };
}

/** The operation is a server create (its failure gives the quota back; a failed action's does not). */
async function isCreate(db: Knex.Transaction, operationId: string): Promise<boolean> {
  return (await operations.get(db, operationId))?.kind === 'server.create';
}

export type ComputeControlActivities = ReturnType<typeof createComputeControlActivities>;
