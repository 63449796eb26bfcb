/**
 * The conductor worker (nova-conductor's job): runs every workflow and every activity that touches
 * the database, on the `stratus-conductor` task queue. Stateless; run as many as you like.
 */
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import type { Knex } from 'knex';
import { createComputeControlActivities } from '../activities/compute/control';
import type { Logger } from '../core/log';
import { CONDUCTOR_TASK_QUEUE } from '../temporal/constants';

export interface ConductorDeps {
  connection: NativeConnection;
  namespace: string;
  db: Knex;
  log: Logger;
  /** A pre-built workflow bundle (tests build one per file); by default the workflows are bundled at start. */
  workflowBundle?: { code: string };
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

export async function createConductorWorker({ connection, namespace, db, log, workflowBundle }: ConductorDeps): Promise<Worker> {
  return Worker.create({
    connection,
    namespace,
    taskQueue: CONDUCTOR_TASK_QUEUE,
    ...(workflowBundle ? { workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
    activities: {
      ...createComputeControlActivities({ db, log: log.child({ component: 'conductor' }) }),
    },
  });
}
