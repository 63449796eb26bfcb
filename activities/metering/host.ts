/**
 * Metering on a host agent: reads domain counters from libvirt. Never touches the database.
 *
 * Every server's meter asks for its own domain, but the meters of a host are due at the same
 * instants (their ticks are aligned to multiples of the interval), so the requests arrive together;
 * `BulkSampler` answers all requests that arrive within `shareMs` of a bulk call with that call's
 * result: one virConnectGetAllDomainStats per host and interval instead of one call per server.
 */
import type { Logger } from '../../core/log';
import { metrics } from '../../core/metrics';
import type { DomainStats, Hypervisor } from '../../libvirt';
import type { DomainReading, MeteringHostActivitiesContract } from './types';

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
    return (await this.last.result).get(domainName);
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
  return {
    async sampleDomain({ domainName }: { domainName: string }): Promise<DomainReading | null> {
      const s = await sampler.get(domainName);
      if (!s) return null;
      const { name: _name, state, ...counters } = s;
      return { powerState: state, ...counters };
    },
  } satisfies MeteringHostActivitiesContract & Record<string, unknown>;
}
