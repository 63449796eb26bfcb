/**
 * The conductor worker (nova-conductor's job): runs every workflow and every activity that touches
 * the database, on the cloud's conductor task queue (STRATUS_CONDUCTOR_TASK_QUEUE, default
 * `stratus-conductor`). Stateless; run as many as you like.
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import type { Knex } from 'knex';
import { createBatchActivities } from '../activities/compute/batch';
import { ApplicationFailure } from '@temporalio/common';
import { createComputeControlActivities } from '../activities/compute/control';
import type { FaultPlan } from '../activities/fault-injection';
import { createImageControlActivities } from '../activities/image/control';
import { createMeteringControlActivities } from '../activities/metering/control';
import { progressCarrier } from './progress-carrier';
import { activityMetricsInterceptor } from './metrics';
import { loadWorkflowBundle } from './workflow-bundle';
import { createNetworkControlActivities } from '../activities/network/control';
import { createReconcileControlActivities } from '../activities/reconcile/control';
import { createStorageControlActivities } from '../activities/storage/control';
import { DomainError } from '../core/errors';
import type { Logger } from '../core/log';
import type { QuotaLimits } from '../db/repositories/quotas';
import type { PlacementSettings } from '../activities/compute/placement';
import type { ImageUrlSigner } from '../images/signed-url';
import type { ConductorClient } from '../temporal/start-operation';
import { reconciler, reconcilerWorkflowId, type ReconcilerInput } from '../workflows/reconciler';

export interface ConductorDeps {
  connection: NativeConnection;
  namespace: string;
  /** The task queue this worker polls (config.temporal.conductorTaskQueue); activities start their workflows there too. */
  taskQueue: string;
  db: Knex;
  log: Logger;
  /** Client for the workflows activities start themselves (metering, batch members, the reconciler's restarts). */
  temporal?: Client;
  heartbeatSeconds: number;
  /** Default allocation ratios and RAM weigher (config.scheduler); Nova's defaults when absent. */
  placement?: PlacementSettings;
  /** Default per-project quota limits (config.quotas); core/config.ts DEFAULT_QUOTAS when absent. */
  quotaDefaults?: QuotaLimits;
  /** Seconds between two samples of a server's meter (default 60). */
  meterIntervalSeconds?: number;
  images: { signer: ImageUrlSigner; apiBaseUrl: string; urlTtlSeconds: number };
  /** A pre-built workflow bundle (tests build one per file); by default the workflows are bundled at start. */
  workflowBundle?: { code: string };
  /** Tests only: failures injected on purpose at the create flow's conductor steps. */
  faults?: FaultPlan;
  /** Temporal's sticky cache size (STRATUS_WORKFLOW_CACHE). */
  workflowCacheSize?: number;
}

/** Bounded, because Temporal's default grows with the heap limit and each running server's meter workflow would stay cached. */
const DEFAULT_WORKFLOW_CACHE = 100;

/** The workflow bundle for the conductor's sandbox (built by a child process, cached: workers/workflow-bundle.ts). */
export function bundleWorkflows(log: Logger): Promise<{ code: string }> {
  return loadWorkflowBundle(log.child({ component: 'workflow-bundler' }));
}

/**
 * A domain error (the row is in another state, gone, refused) will not heal by retrying: it leaves the
 * activity as a non-retryable failure. Anything else (the database is down) is retried until the
 * step's bound (workflows/activity-proxies.ts).
 */
function businessErrorsFinal<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        if (err instanceof DomainError) throw ApplicationFailure.nonRetryable(err.message, err.name);
        throw err;
      }
    };
  }
  return wrapped as T;
}

/** The conductor's activities, each step of the create flow a named fault point (checked only when a plan is given). */
export function conductorActivities(
  deps: Pick<ConductorDeps, 'db' | 'log' | 'temporal' | 'taskQueue' | 'heartbeatSeconds' | 'images' | 'faults' | 'placement' | 'quotaDefaults' | 'meterIntervalSeconds'>,
) {
  const { db, heartbeatSeconds } = deps;
  const log = deps.log.child({ component: 'conductor' });
  const temporal: { temporal?: ConductorClient } = deps.temporal ? { temporal: { client: deps.temporal, taskQueue: deps.taskQueue } } : {};
  const placement = deps.placement ? { placement: deps.placement } : {};
  const activities = businessErrorsFinal({
    ...createComputeControlActivities({
      db,
      log,
      heartbeatSeconds,
      ...placement,
      ...(deps.quotaDefaults ? { quotaDefaults: deps.quotaDefaults } : {}),
      meterIntervalMs: Math.round((deps.meterIntervalSeconds ?? 60) * 1000),
      ...temporal,
    }),
    ...createMeteringControlActivities({ db }),
    ...createImageControlActivities({ db, ...deps.images }),
    ...createNetworkControlActivities({ db }),
    ...createStorageControlActivities({ db, heartbeatSeconds, ...placement }),
    ...createReconcileControlActivities({ db, log, ...temporal }),
    ...createBatchActivities({ db, ...temporal }),
  });
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
      await faults.pass(point);
      return original(...args);
    };
  }
  return wrapped as typeof activities;
}

export async function createConductorWorker(deps: ConductorDeps): Promise<Worker> {
  const activities = conductorActivities(deps);
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: deps.taskQueue,
    maxCachedWorkflows: deps.workflowCacheSize ?? DEFAULT_WORKFLOW_CACHE,
    ...(deps.workflowBundle ? { workflowBundle: deps.workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
    activities,
    interceptors: {
      activity: [progressCarrier(activities.recordOperationProgress, deps.log.child({ component: 'conductor' })), activityMetricsInterceptor(deps.taskQueue)],
    },
  });
}

/**
 * Starts the reconciler (one per cloud). The newest conductor's settings win: a running reconciler
 * is replaced (it holds no state a restart loses: the ledger and the operations are in the database).
 */
export async function startReconciler({ client, taskQueue }: ConductorClient, input: ReconcilerInput): Promise<void> {
  await client.workflow.start(reconciler, {
    workflowId: reconcilerWorkflowId(taskQueue),
    taskQueue,
    args: [input],
    workflowIdConflictPolicy: 'TERMINATE_EXISTING',
  });
}
