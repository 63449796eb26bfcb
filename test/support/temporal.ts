/**
 * The one Temporal dev server shared by the whole jest run (started in global-setup.ts).
 * Test files connect to it; they never start their own unless they test the dev server itself.
 * Each test cloud (and each test that runs its own conductor worker) takes a conductor task queue of
 * its own (testConductorQueue): a finished file's long-running workflows (host monitors, metering
 * samplers) keep running on the server, and on a shared queue the next file's conductor would serve
 * them, writing their hosts into its own database. On a queue of their own nobody polls them any more.
 */
import { randomBytes } from 'node:crypto';
import { CONDUCTOR_TASK_QUEUE } from '../../temporal/constants';

export const TEMPORAL_ADDRESS_ENV = 'STRATUS_TEST_TEMPORAL_ADDRESS';
export const TEMPORAL_NAMESPACE_ENV = 'STRATUS_TEST_TEMPORAL_NAMESPACE';

export function testTemporal(): { address: string; namespace: string } {
  const address = process.env[TEMPORAL_ADDRESS_ENV];
  const namespace = process.env[TEMPORAL_NAMESPACE_ENV];
  if (!address || !namespace) {
    throw new Error(
      `${TEMPORAL_ADDRESS_ENV} / ${TEMPORAL_NAMESPACE_ENV} are not set: run tests through jest (its globalSetup, test/support/global-setup.ts, starts the shared Temporal dev server)`,
    );
  }
  return { address, namespace };
}

/** A fresh conductor task queue (STRATUS_CONDUCTOR_TASK_QUEUE) for one test cloud: `stratus-conductor-<random hex>`. */
export function testConductorQueue(): string {
  return `${CONDUCTOR_TASK_QUEUE}-${randomBytes(4).toString('hex')}`;
}
