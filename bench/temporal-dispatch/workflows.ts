/** Workflows of bench/temporal-dispatch.ts: N sequential no-op activities, on another queue or the same one. */
import { proxyActivities } from '@temporalio/workflow';

const elsewhere = proxyActivities<{ ping(): Promise<number> }>({ taskQueue: 'dispatch-bench-host', startToCloseTimeout: '10 seconds' });
const here = proxyActivities<{ ping(): Promise<number> }>({ startToCloseTimeout: '10 seconds' });

export async function crossQueue(n: number): Promise<void> {
  for (let i = 0; i < n; i += 1) await elsewhere.ping();
}

export async function sameQueue(n: number): Promise<void> {
  for (let i = 0; i < n; i += 1) await here.ping();
}
