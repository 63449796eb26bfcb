/**
 * Legacy: the lifetime workflow of a meter started before migration 0011 (`meter:<serverId>`). Creates
 * no longer start one (the host's sampler takes every sample, the delete flow writes the final one);
 * it stays registered so the meters of servers created before keep running until their delete flow's
 * stop_metering sends `stop`.
 *
 * The samples of a running server are taken by its host's sampler (workflows/meter-host.ts: one
 * bulk read and one batch write per host and interval, whatever the number of servers); this
 * workflow is the meter's lifetime: on `stop` it takes a final sample of the domain and ends. The
 * delete flow stops metering after the domain is gone, so that sample usually has no reading: it
 * marks the end. Its history stays a handful of events, whatever the server's age.
 *
 * Undo: nothing to undo; samples are facts. Meters started before metering had a target (input with
 * only `serverId`) just wait for `stop`, as they did before.
 */
import { condition, defineSignal, setHandler } from '@temporalio/workflow';
import type { DomainReading, MeterServerInput } from '../activities/metering/types';
import { meteringControl, meteringOnHost } from './meter-host';

export type { MeterServerInput };

export const stopMeteringSignal = defineSignal<[]>('stop');

export async function meterServer(input: MeterServerInput): Promise<void> {
  let stopped = false;
  setHandler(stopMeteringSignal, () => {
    stopped = true;
  });
  await condition(() => stopped);
  const { serverId, hostName, domainName, intervalMs } = input;
  if (!hostName || !domainName || !intervalMs) return;
  let reading: DomainReading | null = null;
  try {
    reading = await meteringOnHost(hostName, intervalMs).sampleDomain({ domainName });
  } catch {
    reading = null;
  }
  await meteringControl.recordFinalSample({ serverId, atMs: Date.now(), reading });
}
