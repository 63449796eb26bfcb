/**
 * Compute activities that run on the conductor (they touch the database): host registration and
 * liveness. Built by a factory from explicit dependencies so tests hand in their own database.
 */
import type { Knex } from 'knex';
import type { Logger } from '../../core/log';
import * as hosts from '../../db/repositories/hosts';

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
  log: Logger;
}

export function createComputeControlActivities({ db, log }: ComputeControlDeps) {
  return {
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
