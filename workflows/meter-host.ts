/**
 * The sampler of one host (`meter-host:<host>:<intervalMs>`): every interval, on multiples of the
 * interval since the epoch, it reads every Stratus domain of the host in one host-agent activity (one
 * bulk libvirt call) and writes a sample for every active meter of the host in one conductor activity.
 * Its cost per tick does not depend on how many servers the host runs (bench/metering.ts).
 *
 * - A host that does not answer within the interval (agent down, restarting): every meter of the host
 *   gets a 'missed' sample for that interval — a gap, never an invented reading. Ticks the sampler
 *   itself slept through (conductor down) become gaps when it wakes (recordHostTick).
 * - Started (or woken) by the conductor's startMetering with signal-with-start; it ends when a tick
 *   finds no active meter on the host and nobody woke it since, so an idle host costs nothing.
 * - Continues-as-new every `ticksPerRun` ticks (default 500, ~5,000 history events) or when Temporal
 *   suggests it.
 *
 * Undo: nothing; samples are facts.
 */
import { continueAsNew, defineSignal, proxyActivities, proxyLocalActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { MeteringControlActivities } from '../activities/metering/control';
import type { DomainReading, MeterHostInput, MeteringHostActivitiesContract } from '../activities/metering/types';
import { hostTaskQueue } from '../temporal/constants';

export type { MeterHostInput };

/** "A meter started on this host": keeps an idle sampler from ending before it sees the new meter. */
export const wakeMeterHostSignal = defineSignal<[]>('wake');

const DEFAULT_TICKS_PER_RUN = 500;

export const meteringControl = proxyLocalActivities<MeteringControlActivities>({
  startToCloseTimeout: '60 seconds',
  retry: { initialInterval: '100 ms', maximumInterval: '5 seconds' },
});

/** Host-side metering reads: one try within the interval (a reading that comes later is not that interval's). */
export function meteringOnHost(hostName: string, intervalMs: number) {
  return proxyActivities<MeteringHostActivitiesContract>({
    taskQueue: hostTaskQueue(hostName),
    scheduleToStartTimeout: Math.max(intervalMs, 1000),
    startToCloseTimeout: Math.max(intervalMs, 5000),
    retry: { maximumAttempts: 1 },
  });
}

export async function meterHost(input: MeterHostInput): Promise<void> {
  let woken = false;
  setHandler(wakeMeterHostSignal, () => {
    woken = true;
  });
  const { hostName, intervalMs } = input;
  const host = meteringOnHost(hostName, intervalMs);
  let tick = input.nextTickMs ?? Math.ceil(Date.now() / intervalMs) * intervalMs;
  const perRun = input.ticksPerRun ?? DEFAULT_TICKS_PER_RUN;

  for (let done = 0; ; done++) {
    if (done >= perRun || workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof meterHost>({ ...input, nextTickMs: tick });
    }
    const wait = tick - Date.now();
    if (wait > 0) await sleep(wait);
    // Late (this workflow could not run on time): sample now, as the latest due tick; the skipped ones become gaps.
    tick = Math.max(tick, Math.floor(Date.now() / intervalMs) * intervalMs);
    let readings: Record<string, DomainReading> | null = null;
    try {
      readings = await host.sampleHost();
    } catch {
      readings = null; // the host did not answer: a gap for each of its meters
    }
    woken = false;
    const { active } = await meteringControl.recordHostTick({ hostName, intervalMs, tickMs: tick, readings });
    // Idle: end. A wake signal that arrives meanwhile fails this completion, so the new meter is seen.
    if (active === 0 && !woken) return;
    tick += intervalMs;
  }
}
