/**
 * Ceilometer's job, one long-running workflow per server (`meter:<serverId>`), started by the create
 * flow's start_metering step (through an activity, so it is not a child that dies with the create
 * flow) and stopped by the delete flow. For now metering is the record of when it began and ended
 * (server_meters); usage sampling and billing come with the metering issue, and will live here.
 */
import { condition, defineSignal, setHandler } from '@temporalio/workflow';

export const stopMeteringSignal = defineSignal<[]>('stop');

export async function meterServer(_input: { serverId: string }): Promise<void> {
  let stopped = false;
  setHandler(stopMeteringSignal, () => {
    stopped = true;
  });
  await condition(() => stopped);
}
