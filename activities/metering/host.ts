/**
 * Metering on a host agent: reads domain counters from libvirt. Never touches the database.
 *
 * The host's sampler (workflows/meter-host.ts) asks for every Stratus domain once per tick; a server's
 * meter asks for its own domain when it stops (the final sample). `BulkSampler` answers every request
 * that arrives within `shareMs` of a bulk call with that call's result (virConnectGetAllDomainStats).
 */
import type { Logger } from '../../core/log';
import { metrics } from '../../core/metrics';
import type { DomainStats, Hypervisor } from '../../libvirt';
import type { DomainReading, MeteringHostActivitiesContract } from './types';

/** Domains of Stratus servers (activities/compute/types.ts domainNameFor); others on the host are not reported. */
const DOMAIN_PREFIX = 'stratus-';

export class BulkSampler {
  private last: { at: number; result: Promise<Map<string, DomainStats>> } | undefined;
  /** Bulk calls made (for tests and the bench). */
  calls = 0;

  constructor(
    private readonly hypervisor: Hypervisor,
    private readonly hostName: string,
    private readonly shareMs = 500,
  ) {}

  async get(domainName: string): Promise<DomainStats | undefined> {
    return (await this.all()).get(domainName);
  }

  /** Every domain's stats, from a call made within `shareMs` or a new one. */
  async all(): Promise<Map<string, DomainStats>> {
    const now = Date.now();
    if (!this.last || now - this.last.at > this.shareMs) {
      this.calls++;
      const m = metrics();
      m.hostStatsCalls.inc({ host: this.hostName });
      const stop = m.hostStatsDuration.startTimer({ host: this.hostName });
      const result = this.hypervisor.domainStats().then((list) => new Map(list.map((s) => [s.name, s])));
      result.then(() => stop(), () => stop());
      // A failed call is not shared: the next request tries again.
      result.catch(() => {
        if (this.last?.result === result) this.last = undefined;
      });
      this.last = { at: now, result };
    }
    return this.last.result;
  }
}

export interface MeteringHostDeps {
  hypervisor: Hypervisor;
  hostName: string;
  log: Logger;
  /** Requests within this many ms of a bulk call share its result (default 500). */
  shareMs?: number;
}

export function createMeteringHostActivities({ hypervisor, hostName, shareMs }: MeteringHostDeps) {
  const sampler = new BulkSampler(hypervisor, hostName, shareMs);
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
