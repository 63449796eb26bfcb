/**
 * One long-running workflow per hypervisor host (id `host:<name>`): the host agent signals it a
 * heartbeat every few seconds (signal-with-start, so the first heartbeat also registers the host);
 * the workflow writes each one to the database through a conductor activity, and marks the host
 * down when heartbeats stop or the agent says goodbye. The agent itself never touches the database.
 */
import { condition, continueAsNew, defineSignal, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { ComputeControlActivities, HostReport } from '../activities/compute/control';

export const heartbeatSignal = defineSignal<[HostReport]>('heartbeat');
export const goodbyeSignal = defineSignal<[]>('goodbye');

export interface HostMonitorInput {
  hostName: string;
  heartbeatSeconds: number;
}

/** How many heartbeats one run records before continuing as new (keeps history small). */
const HEARTBEATS_PER_RUN = 500;
/** A host is declared down after this many missed heartbeats. */
const MISSED_HEARTBEATS_BEFORE_DOWN = 3;

const { recordHostHeartbeat, markHostDown } = proxyActivities<ComputeControlActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 ms', maximumInterval: '5 seconds' },
});

export function hostMonitorWorkflowId(hostName: string): string {
  return `host:${hostName}`;
}

export async function hostMonitor(input: HostMonitorInput): Promise<void> {
  let latest: HostReport | undefined;
  let leaving = false;
  setHandler(heartbeatSignal, (report) => {
    latest = report;
    leaving = false;
  });
  setHandler(goodbyeSignal, () => {
    leaving = true;
  });

  let recorded = 0;
  let down = false;
  const timeoutMs = input.heartbeatSeconds * MISSED_HEARTBEATS_BEFORE_DOWN * 1000;
  for (;;) {
    const wakeUp = () => latest !== undefined || leaving;
    // While down, wait for the next heartbeat however long it takes; while up, only so long.
    const woke = down ? (await condition(wakeUp), true) : await condition(wakeUp, timeoutMs);
    if (latest !== undefined) {
      const report = latest;
      latest = undefined;
      await recordHostHeartbeat(report);
      down = false;
      recorded += 1;
    } else if (!down && (leaving || !woke)) {
      await markHostDown(input.hostName);
      down = true;
      leaving = false;
    }
    if (latest === undefined && (recorded >= HEARTBEATS_PER_RUN || workflowInfo().continueAsNewSuggested)) {
      await continueAsNew<typeof hostMonitor>(input);
    }
  }
}
