/**
 * The sampler of one host (`meter-host:<host>:<intervalMs>`): every interval, on multiples of the
 * interval since the epoch, it reads every Stratus domain of the host (one bulk libvirt call on the
 * agent) in pages of `pageSize` domains, writes the samples of each page in one conductor activity,
 * and ends the tick with one that gives the meters no page covered a gap. Pages keep each payload far
 * below Temporal's limits (512 KB warned, 2 MB refused) however many servers the host runs; a tick
 * costs one activity and one local activity per page (bench/metering.ts).
 *
 * - A host that does not answer within the interval (agent down, restarting): every meter of the host
 *   gets a 'missed' sample for that interval — a gap, never an invented reading. Ticks the sampler
 *   itself slept through (conductor down) become gaps when it wakes (recordHostTick).
 * - Started (or woken) by the conductor's startMetering with signal-with-start; it ends when a tick
 *   finds no active meter on the host and nobody woke it since, so an idle host costs nothing.
 * - Continues-as-new after `ticksPerRun` pages (default 500, one page a tick on a host of up to
 *   1,000 servers: ~5,000 history events), after READINGS_PER_RUN readings (the pages' bytes in the
 *   history), or when Temporal suggests it.
 * - Histories recorded before pages (one `sampleHost` activity a tick) replay on the old path
 *   (patch 'sampler-pages'; docs/workflow-versioning.md).
 *
 * Undo: nothing; samples are facts.
 */
import { continueAsNew, defineSignal, patched, proxyActivities, proxyLocalActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { MeteringControlActivities } from '../activities/metering/control';
import type { DomainReading, HostPage, MeterHostInput, MeteringHostActivitiesContract } from '../activities/metering/types';
import { hostTaskQueue } from '../temporal/constants';

export type { MeterHostInput };

/** "A meter started on this host": keeps an idle sampler from ending before it sees the new meter. */
export const wakeMeterHostSignal = defineSignal<[]>('wake');

const DEFAULT_TICKS_PER_RUN = 500;
/** Domains per page: ~136 KB of realistic counters (test/unit/metering-pages.test.ts), far below 512 KB. */
export const DEFAULT_PAGE_SIZE = 1000;
/** Readings per run before continue-as-new: ~4 MB of pages in the history (Temporal warns at 10 MB). */
const READINGS_PER_RUN = 30_000;

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
  const limit = input.pageSize ?? DEFAULT_PAGE_SIZE;

  /** Samples of one tick, page by page, until the last page or a page the host does not answer. */
  async function samplePages(tickMs: number): Promise<{ pages: number; readings: number }> {
    let pages = 0;
    let readings = 0;
    let after: string | undefined;
    do {
      pages++;
      let page: HostPage;
      try {
        page = await host.sampleHostPage(after === undefined ? { tickMs, limit } : { tickMs, after, limit });
      } catch {
        break; // the host stopped answering: the meters of the pages to come get a gap (recordHostTick)
      }
      readings += page.readings.length;
      if (page.readings.length > 0) await meteringControl.recordHostPage({ hostName, intervalMs, tickMs, readings: page.readings });
      after = page.next;
    } while (after !== undefined);
    return { pages, readings };
  }

  let readingsThisRun = 0;
  for (let done = 0; ; ) {
    if (done >= perRun || readingsThisRun >= READINGS_PER_RUN || workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof meterHost>({ ...input, nextTickMs: tick });
    }
    const wait = tick - Date.now();
    if (wait > 0) await sleep(wait);
    // Late (this workflow could not run on time): sample now, as the latest due tick; the skipped ones become gaps.
    tick = Math.max(tick, Math.floor(Date.now() / intervalMs) * intervalMs);
    let readings: Record<string, DomainReading> | null = null;
    if (patched('sampler-pages')) {
      const sampled = await samplePages(tick);
      done += sampled.pages;
      readingsThisRun += sampled.readings;
      // readings stays null: the pages are written; what no page covered gets a gap.
    } else {
      done++;
      try {
        readings = await host.sampleHost();
      } catch {
        readings = null; // the host did not answer: a gap for each of its meters
      }
    }
    woken = false;
    const { active } = await meteringControl.recordHostTick({ hostName, intervalMs, tickMs: tick, readings });
    // Idle: end. A wake signal that arrives meanwhile fails this completion, so the new meter is seen.
    if (active === 0 && !woken) return;
    tick += intervalMs;
  }
}
