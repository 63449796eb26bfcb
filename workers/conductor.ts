/**
 * The conductor worker (nova-conductor's job): runs every workflow and every activity that touches
 * the database, on the `stratus-conductor` task queue. Stateless; run as many as you like.
 */
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import type { Knex } from 'knex';
import { createBatchActivities } from '../activities/compute/batch';
import { createComputeControlActivities } from '../activities/compute/control';
import type { FaultPlan } from '../activities/fault-injection';
import { createImageControlActivities } from '../activities/image/control';
import { createNetworkControlActivities } from '../activities/network/control';
import { createStorageControlActivities } from '../activities/storage/control';
import type { Logger } from '../core/log';
import type { QuotaLimits } from '../db/repositories/quotas';
import type { PlacementSettings } from '../activities/compute/placement';
import type { ImageUrlSigner } from '../images/signed-url';
import { CONDUCTOR_TASK_QUEUE } from '../temporal/constants';

export interface ConductorDeps {
  connection: NativeConnection;
  namespace: string;
  db: Knex;
  log: Logger;
  /** Client for the workflows activities start themselves (metering). */
  temporal?: Client;
  heartbeatSeconds: number;
  /** Default allocation ratios and RAM weigher (config.scheduler); Nova's defaults when absent. */
  placement?: PlacementSettings;
  /** Default per-project quota limits (config.quotas); core/config.ts DEFAULT_QUOTAS when absent. */
  quotaDefaults?: QuotaLimits;
  images: { signer: ImageUrlSigner; apiBaseUrl: string; urlTtlSeconds: number };
  /** A pre-built workflow bundle (tests build one per file); by default the workflows are bundled at start. */
  workflowBundle?: { code: string };
  /** Tests only: failures injected on purpose at the create flow's conductor steps. */
  faults?: FaultPlan;
}

/** Bundles the workflows (webpack, ~1 s) for the conductor's isolated workflow sandbox. */
export async function bundleWorkflows(log: Logger): Promise<{ code: string }> {
  const bundleLog = log.child({ component: 'workflow-bundler' });
  return bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    logger: {
      log: (level, message, meta) => bundleLog.debug(meta ?? {}, `${level}: ${message}`),
      trace: (message, meta) => bundleLog.trace(meta ?? {}, message),
      debug: (message, meta) => bundleLog.debug(meta ?? {}, message),
      info: (message, meta) => bundleLog.debug(meta ?? {}, message),
      warn: (message, meta) => bundleLog.warn(meta ?? {}, message),
      error: (message, meta) => bundleLog.error(meta ?? {}, message),
    },
  });
}

/** The conductor's activities, each step of the create flow a named fault point (checked only when a plan is given). */
export function conductorActivities(
  deps: Pick<ConductorDeps, 'db' | 'log' | 'temporal' | 'heartbeatSeconds' | 'images' | 'faults' | 'placement' | 'quotaDefaults'>,
) {
  const { db, heartbeatSeconds } = deps;
  const placement = deps.placement ? { placement: deps.placement } : {};
  const activities = {
    ...createComputeControlActivities({
      db,
      log: deps.log.child({ component: 'conductor' }),
      heartbeatSeconds,
      ...placement,
      ...(deps.quotaDefaults ? { quotaDefaults: deps.quotaDefaults } : {}),
      ...(deps.temporal ? { temporal: deps.temporal } : {}),
    }),
    ...createImageControlActivities({ db, ...deps.images }),
    ...createNetworkControlActivities({ db }),
    ...createStorageControlActivities({ db, heartbeatSeconds, ...placement }),
    ...createBatchActivities({ db, ...(deps.temporal ? { temporal: deps.temporal } : {}) }),
  };
  const faults = deps.faults;
  if (!faults) return activities;
  const points: Record<string, keyof typeof activities> = {
    authenticate: 'authenticateRequest',
    select_image: 'selectImage',
    schedule: 'claimHost',
    allocate_port: 'allocatePorts',
    attach_volume: 'prepareServerVolumes',
    start_metering: 'startMetering',
  };
  const wrapped: Record<string, unknown> = { ...activities };
  for (const [point, name] of Object.entries(points)) {
    const original = activities[name] as (...args: unknown[]) => Promise<unknown>;
    wrapped[name] = async (...args: unknown[]) => {
      faults.check(point);
      return original(...args);
    };
  }
  return wrapped as typeof activities;
}

export async function createConductorWorker(deps: ConductorDeps): Promise<Worker> {
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: CONDUCTOR_TASK_QUEUE,
    ...(deps.workflowBundle ? { workflowBundle: deps.workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
    activities: conductorActivities(deps),
  });
}
