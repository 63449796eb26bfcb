/**
 * Metering on a host agent: reads domain counters from libvirt. Never touches the database.
 *
 * The host's sampler (workflows/meter-host.ts) asks for every Stratus domain once per tick; a server's
 * meter asks for its own domain when it stops (the final sample). `BulkSampler` makes one bulk call
 * (virConnectGetAllDomainStats) for all requests that arrive while it runs.
 */
import type { Logger } from '../../core/log';
import { metrics } from '../../core/metrics';
import type { DomainStats, Hypervisor } from '../../libvirt';
import type { DomainReading, MeteringHostActivitiesContract } from './types';

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

export interface MeteringHostDeps {
  hypervisor: Hypervisor;
  hostName: string;
  log: Logger;
}

export function createMeteringHostActivities({ hypervisor, hostName }: MeteringHostDeps) {
  const sampler = new BulkSampler(hypervisor, hostName);
  const reading = ({ name: _name, state, ...counters }: DomainStats): DomainReading => ({ powerState: state, ...counters });
  return {
    async sampleHost(): Promise<Record<string, DomainReading>> {
      const out: Record<string, DomainReading> = {};
      for (const [name, s] of await sampler.all()) if (name.startsWith(DOMAIN_PREFIX)) out[name] = reading(s);
      return out;
    },
    async sampleDomain({ domainName }: { domainName: string }): Promise<DomainReading | null> {
      const s = await sampler.get(domainName);
      return s ? reading(s) : null;
    },
  } satisfies MeteringHostActivitiesContract & Record<string, unknown>;
}
