/**
 * Compute activities that run on the conductor (they touch the database): host registration and
 * liveness, the server record, scheduling (placement claims), operations and metering records.
 * Built by a factory from explicit dependencies so tests hand in their own database.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Knex } from 'knex';
import type { Logger } from '../../core/log';
import * as claims from '../../db/repositories/claims';
import * as hosts from '../../db/repositories/hosts';
import * as meters from '../../db/repositories/meters';
import * as operations from '../../db/repositories/operations';
import * as projects from '../../db/repositories/projects';
import * as servers from '../../db/repositories/servers';
import * as users from '../../db/repositories/users';
import { CONDUCTOR_TASK_QUEUE, meterWorkflowId, searchAttributes } from '../../temporal/constants';
import type { Flavor } from './types';

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

export interface ComputeControlDeps {
  db: Knex;
  /** To start and stop the long-running metering workflows. */
  temporal?: Client;
  log: Logger;
  /** A host is schedulable while its last heartbeat is younger than 3 of these. */
  heartbeatSeconds: number;
}

export interface ServerStatePatch {
  serverId: string;
  status?: servers.ServerStatus;
  taskState?: string | null;
  powerState?: string | null;
  host?: string | null;
  fault?: { step: string; code: string; message: string } | null;
}

export function createComputeControlActivities({ db, log, heartbeatSeconds, temporal }: ComputeControlDeps) {
  return {
    /** The caller and the project are still enabled (they may have been disabled since the API call). */
    async authenticateRequest({ userId, projectId }: { userId: string; projectId: string }): Promise<void> {
      const [user, project] = await Promise.all([users.getById(db, userId), projects.getById(db, projectId)]);
      if (!user?.enabled) throw ApplicationFailure.nonRetryable(`user ${userId} is disabled or gone`, 'NotAuthorized');
      if (!project?.enabled) throw ApplicationFailure.nonRetryable(`project ${projectId} is disabled or gone`, 'NotAuthorized');
    },

    /** Updates the server record and returns it (the delete flow reads the host from it). */
    async setServerState(patch: ServerStatePatch): Promise<{ host: string | null; status: string }> {
      const { serverId, ...changes } = patch;
      const server = await servers.update(db, serverId, changes);
      return { host: server.host, status: server.status };
    },

    /**
     * Placement: filter live hosts (not excluded, the required one if any) with room for the flavor,
     * weigh by free RAM, and claim atomically in the database. No host → NoValidHost naming, for each
     * host, why it was not chosen.
     */
    async claimHost(req: {
      serverId: string;
      flavor: Flavor;
      excludeHosts: string[];
      requiredHost?: string | null;
      lastFailure?: string;
    }): Promise<string> {
      const { items } = await hosts.list(db, { limit: 1000 });
      const usage = await claims.usageByHost(db);
      const reasons: Record<string, string> = {};
      const now = Date.now();
      const candidates = items
        .filter((h) => {
          if (req.requiredHost && h.name !== req.requiredHost) reasons[h.name] = `not ${req.requiredHost}, where the server's volumes are`;
          else if (req.excludeHosts.includes(h.name)) reasons[h.name] = `failed this request already${req.lastFailure ? ` (${req.lastFailure})` : ''}`;
          else if (!hosts.isAlive(h, heartbeatSeconds, now)) reasons[h.name] = 'host agent is down';
          else return true;
          return false;
        })
        .map((h) => ({ host: h, freeRam: h.ramMb - (usage[h.name]?.ramMb ?? 0) }))
        .sort((a, b) => b.freeRam - a.freeRam || a.host.name.localeCompare(b.host.name))
        .map((c) => c.host.name);
      const result = await claims.claim(db, {
        serverId: req.serverId,
        vcpus: req.flavor.vcpus,
        ramMb: req.flavor.ramMb,
        diskGb: req.flavor.diskGb,
        candidates,
      });
      if (result.host) return result.host;
      Object.assign(reasons, result.reasons);
      const explained = Object.entries(reasons).map(([host, why]) => `${host}: ${why}`);
      throw ApplicationFailure.nonRetryable(
        `no valid host for ${req.flavor.name} (${req.flavor.vcpus} vCPU, ${req.flavor.ramMb} MB RAM, ${req.flavor.diskGb} GB disk)` +
          (explained.length > 0 ? ` — ${explained.join('; ')}` : ' — no host agent has registered'),
        'NoValidHost',
        reasons,
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
        await operations.finish(trx, req.operationId, { status: req.status, ...(req.error ? { error: req.error } : {}) });
      });
    },

    async finishOperation(req: { operationId: string; status: 'succeeded' | 'failed'; error?: operations.OperationError }): Promise<void> {
      await operations.finish(db, req.operationId, { status: req.status, ...(req.error ? { error: req.error } : {}) });
    },

    /** Records that metering began and starts the server's `meterServer` workflow (idempotent). */
    async startMetering({ serverId, projectId }: { serverId: string; projectId: string }): Promise<void> {
      if (!temporal) throw new Error('startMetering needs a Temporal client');
      const workflowId = meterWorkflowId(serverId);
      await meters.start(db, { serverId, workflowId });
      await temporal.workflow.start('meterServer', {
        workflowId,
        taskQueue: CONDUCTOR_TASK_QUEUE,
        args: [{ serverId }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        typedSearchAttributes: [
          { key: searchAttributes.project, value: projectId },
          { key: searchAttributes.resourceId, value: serverId },
          { key: searchAttributes.operationKind, value: 'server.meter' },
        ],
      });
    },

    /** Records that metering ended and stops the meter workflow; absent or finished is fine. */
    async stopMetering({ serverId }: { serverId: string }): Promise<void> {
      await meters.stop(db, serverId);
      if (!temporal) return;
      await temporal.workflow
        .getHandle(meterWorkflowId(serverId))
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

export type ComputeControlActivities = ReturnType<typeof createComputeControlActivities>;
