/**
 * Contracts of the metering activities (Ceilometer's job). Workflows import these by type only; the
 * factories in control.ts (conductor) and host.ts (host agent) implement them.
 */
import type { DomainStats } from '../../libvirt';

/** A domain's reading as the host agent returns it. */
export type DomainReading = Omit<DomainStats, 'name' | 'state'> & { powerState: string };

export interface SampleToRecord {
  seq: number;
  status: 'ok' | 'missed' | 'final';
  /** ms since the epoch: the interval's scheduled instant (the final sample: when metering stopped). */
  sampledAtMs: number;
  reading: DomainReading | null;
}

/** Host agent side (task queue host.<name>). Read-only, so retrying is always safe. */
export interface MeteringHostActivitiesContract {
  /**
   * The domain's counters now, or null when the host has no such domain. Readings of one host are
   * taken in one bulk libvirt call shared by every meter that asks within a short window.
   */
  sampleDomain(req: { domainName: string }): Promise<DomainReading | null>;
}

/** Input of the `meterServer` workflow (started by the conductor's startMetering). */
export interface MeterServerInput {
  serverId: string;
  /** Where the server runs and its domain's name; absent on meters started before sampling existed. */
  hostName?: string;
  domainName?: string;
  intervalMs?: number;
  /** Carried across continue-as-new: the next interval index to sample, and when index 0 was due (ms). */
  nextSeq?: number;
  originMs?: number;
  /** Ticks per run before continue-as-new (default 500). */
  samplesPerRun?: number;
}
