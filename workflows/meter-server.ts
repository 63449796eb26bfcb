/**
 * Ceilometer's job, one long-running workflow per server (`meter:<serverId>`), started by the create
 * flow as an abandoned child so it outlives it. For now it records when metering began and ended;
 * usage sampling and billing come with the metering issue.
 */
import { condition, defineSignal, setHandler } from '@temporalio/workflow';
import { conductor } from './activity-proxies';

export const stopMeteringSignal = defineSignal<[]>('stop');

export function meterWorkflowId(serverId: string): string {
  return `meter:${serverId}`;
}

export async function meterServer(input: { serverId: string }): Promise<void> {
  let stopped = false;
  setHandler(stopMeteringSignal, () => {
    stopped = true;
  });
  // The create flow recorded the start; this workflow lives as long as the server does.
  await condition(() => stopped);
  await conductor.recordMeterStop({ serverId: input.serverId });
}
