/**
 * The engine's floor for bench/batch-throughput.ts: a bare workflow that runs the same activities a
 * server create runs (local no-ops on its own worker, one no-op on a "host" queue), doing nothing else.
 */
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';

const local = proxyLocalActivities<{ noop(): Promise<void> }>({ startToCloseTimeout: '10 seconds' });
const host = proxyActivities<{ noop(): Promise<void> }>({ taskQueue: 'batch-floor-host', startToCloseTimeout: '30 seconds' });

export async function floorCreate(shape: { localBefore: number; remote: number; localAfter: number }): Promise<void> {
  for (let i = 0; i < shape.localBefore; i += 1) await local.noop();
  for (let i = 0; i < shape.remote; i += 1) await host.noop();
  for (let i = 0; i < shape.localAfter; i += 1) await local.noop();
}
