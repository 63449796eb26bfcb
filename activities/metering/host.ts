/**
 * Metering on a host agent: reads domain counters from libvirt. Never touches the database.
 *
 * The host's sampler (workflows/meter-host.ts) asks for every Stratus domain once per tick, in pages
 * (`TickSnapshots`); a server's meter asks for its own domain when it stops (the final sample).
 * `BulkSampler` makes one bulk call (virConnectGetAllDomainStats) for all requests that arrive while it runs.
 */
import type { Logger } from '../../core/log';
import { metrics } from '../../core/metrics';
import type { DomainStats, Hypervisor } from '../../libvirt';
import { toReadingRow, type ReadingRow } from './reading-rows';
import type { DomainReading, HostPage, HostPageRequest, MeteringHostActivitiesContract } from './types';

/** Domains of Stratus servers (activities/compute/types.ts domainNameFor); others on the host are not reported. */
const DOMAIN_PREFIX = 'stratus-';

export class BulkSampler {
  private inFlight: Promise<Map<string, DomainStats>> | undefined;
  /** Bulk calls made (for tests and the bench). */
  calls = 0;

  constructor(
    private readonly hypervisor: Hypervisor,
    private readonly hostName: string,
  ) {}

  async get(domainName: string): Promise<DomainStats | undefined> {
    return (await this.all()).get(domainName);
  }

  /**
   * Every domain's stats: requests made while a bulk call is running share its result; a request
   * after it has finished makes a new call (a reading is never reused for a later tick).
   */
  all(): Promise<Map<string, DomainStats>> {
    if (this.inFlight) return this.inFlight;
    this.calls++;
    const m = metrics();
    m.hostStatsCalls.inc({ host: this.hostName });
    const stop = m.hostStatsDuration.startTimer({ host: this.hostName });
    const result = this.hypervisor
      .domainStats()
      .then((list) => new Map(list.map((s) => [s.name, s])))
      .finally(() => {
        stop();
        this.inFlight = undefined;
      });
    this.inFlight = result;
    return result;
  }
}

/** Most readings a page holds whatever is asked (~272 KB; Temporal warns at 512 KB a payload). */
export const MAX_PAGE_SIZE = 2000;

/**
 * The reading of a tick, taken once and served in pages in domain-name order. Kept for the newest
 * few ticks only (samplers of different intervals may page the same host at once). A page of a tick
 * this agent has no reading of — its first page, or a later one after the agent restarted — takes a
 * fresh reading: later than the earlier pages' but within the same interval, and the `after` cursor
 * is a domain name, so no domain is served twice.
 */
export class TickSnapshots {
  private readonly byTick = new Map<number, Promise<ReadingRow[]>>();

  constructor(
    private readonly read: () => Promise<ReadingRow[]>,
    private readonly keep = 2,
  ) {}

  async page({ tickMs, after, limit }: HostPageRequest): Promise<HostPage> {
    const rows = await this.snapshot(tickMs);
    const start = after === undefined ? 0 : firstAfter(rows, after);
    const end = start + Math.min(Math.max(1, limit), MAX_PAGE_SIZE);
    const readings = rows.slice(start, end);
    return end < rows.length ? { readings, next: readings.at(-1)![0] } : { readings };
  }

  private snapshot(tickMs: number): Promise<ReadingRow[]> {
    const known = this.byTick.get(tickMs);
    if (known) return known;
    const taken = this.read().then((rows) => rows.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    // A failed reading is not kept: the next request of the tick tries again.
    taken.catch(() => {
      if (this.byTick.get(tickMs) === taken) this.byTick.delete(tickMs);
    });
    this.byTick.set(tickMs, taken);
    while (this.byTick.size > this.keep) this.byTick.delete(Math.min(...this.byTick.keys()));
    return taken;
  }
}

/** Index of the first row whose domain name sorts after `name` (rows in name order). */
function firstAfter(rows: ReadingRow[], name: string): number {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (rows[mid]![0] <= name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface MeteringHostDeps {
  hypervisor: Hypervisor;
  hostName: string;
  log: Logger;
}

export function createMeteringHostActivities({ hypervisor, hostName }: MeteringHostDeps) {
  const sampler = new BulkSampler(hypervisor, hostName);
  const reading = ({ name: _name, state, ...counters }: DomainStats): DomainReading => ({ powerState: state, ...counters });
  /** Every Stratus domain's reading, in one bulk call. */
  const stratusReadings = async (): Promise<Array<[string, DomainReading]>> =>
    [...(await sampler.all())].filter(([name]) => name.startsWith(DOMAIN_PREFIX)).map(([name, s]) => [name, reading(s)]);
  const ticks = new TickSnapshots(async () => (await stratusReadings()).map(([name, r]) => toReadingRow(name, r)));
  return {
    async sampleHost(): Promise<Record<string, DomainReading>> {
      return Object.fromEntries(await stratusReadings());
    },
    async sampleHostPage(req: HostPageRequest): Promise<HostPage> {
      return ticks.page(req);
    },
    async sampleDomain({ domainName }: { domainName: string }): Promise<DomainReading | null> {
      const s = await sampler.get(domainName);
      return s ? reading(s) : null;
    },
  } satisfies MeteringHostActivitiesContract & Record<string, unknown>;
}
