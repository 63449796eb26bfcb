/**
 * Ceilometer's job, one long-running workflow per server (`meter:<serverId>`), started by the create
 * flow's start_metering step (through an activity, so it is not a child that dies with the create
 * flow) and stopped by the delete flow's stop_metering step (the `stop` signal).
 *
 * Every `intervalMs` it asks the server's host for the domain's counters (host agent, one bulk
 * libvirt call per host and tick) and writes the sample through a conductor activity. Ticks are
 * aligned to multiples of the interval since the epoch (so every meter of a host asks at the same
 * instant and one bulk call serves them); tick k of a run is interval index `seq`, the primary key
 * of the sample with the server id, so a retried write never doubles a sample.
 *
 * - A host that does not answer within the interval (agent down, restarting) gives a 'missed'
 *   sample: a gap, never an invented reading. Ticks the workflow itself slept through (conductor
 *   down) are written as 'missed' too when it wakes.
 * - On `stop` it takes a final sample ('final') and ends. The delete flow stops metering after the
 *   domain is gone, so a final sample of a deleted server usually has no reading: it marks the end.
 * - It continues-as-new every `samplesPerRun` ticks (default 500, ~6,000 history events) or when
 *   Temporal suggests it, carrying the next seq and the tick origin.
 *
 * Undo: nothing to undo; samples are facts. Meters started before metering had a target (input with
 * only `serverId`) just wait for `stop`, as they did before.
 */
import { condition, continueAsNew, defineSignal, proxyActivities, proxyLocalActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { MeteringControlActivities } from '../activities/metering/control';
import type { DomainReading, MeterServerInput, MeteringHostActivitiesContract, SampleToRecord } from '../activities/metering/types';
import { hostTaskQueue } from '../temporal/constants';

export type { MeterServerInput };

export const stopMeteringSignal = defineSignal<[]>('stop');


const DEFAULT_SAMPLES_PER_RUN = 500;
/** At most this many missed intervals are written at once after a long sleep (older ones stay unwritten). */
const MAX_GAP_ROWS = 10_000;

const control = proxyLocalActivities<MeteringControlActivities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '100 ms', maximumInterval: '5 seconds' },
});

export async function meterServer(input: MeterServerInput): Promise<void> {
  let stopped = false;
  setHandler(stopMeteringSignal, () => {
    stopped = true;
  });
  const { serverId, hostName, domainName, intervalMs } = input;
  if (!hostName || !domainName || !intervalMs) {
    await condition(() => stopped);
    return;
  }

  // One try per tick: a reading that arrives after its interval would be a late reading, not a sample.
  const host = proxyActivities<MeteringHostActivitiesContract>({
    taskQueue: hostTaskQueue(hostName),
    scheduleToStartTimeout: Math.max(intervalMs, 1000),
    startToCloseTimeout: Math.max(intervalMs, 5000),
    retry: { maximumAttempts: 1 },
  });
  const read = async (): Promise<DomainReading | null> => {
    try {
      return await host.sampleDomain({ domainName });
    } catch {
      return null; // the host did not answer: a gap
    }
  };

  // Interval index n is due at origin + n·interval; origin is the first multiple of the interval
  // after the first run started, carried across continue-as-new.
  const origin = input.originMs ?? Math.ceil(Date.now() / intervalMs) * intervalMs;
  let seq = input.nextSeq ?? 0;
  const perRun = input.samplesPerRun ?? DEFAULT_SAMPLES_PER_RUN;

  for (let taken = 0; ; taken++) {
    if (taken >= perRun || workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof meterServer>({ ...input, nextSeq: seq, originMs: origin });
    }
    const wait = origin + seq * intervalMs - Date.now();
    if (wait > 0) await condition(() => stopped, wait);
    if (stopped) break;
    const samples: SampleToRecord[] = [];
    // Ticks slept through (the conductor or this workflow was down): gaps.
    const current = Math.floor((Date.now() - origin) / intervalMs);
    for (let s = Math.max(seq, current - MAX_GAP_ROWS); s < current; s++) {
      samples.push({ seq: s, status: 'missed', sampledAtMs: origin + s * intervalMs, reading: null });
    }
    seq = Math.max(seq, current);
    const reading = await read();
    samples.push({ seq, status: reading ? 'ok' : 'missed', sampledAtMs: origin + seq * intervalMs, reading });
    await control.recordSamples({ serverId, samples });
    seq++;
  }

  const reading = await read();
  await control.recordSamples({ serverId, samples: [{ seq, status: 'final', sampledAtMs: Date.now(), reading }] });
}
