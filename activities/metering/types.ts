/**
 * Contracts of the metering activities (Ceilometer's job). Workflows import these by type only; the
 * factories in control.ts (conductor) and host.ts (host agent) implement them.
 */
import type { DomainStats } from '../../libvirt';
import type { ReadingRow } from './reading-rows';

export type { ReadingRow };

/** A domain's reading as the host agent returns it. */
export type DomainReading = Omit<DomainStats, 'name' | 'state'> & { powerState: string };

/** A page of a host's tick: `limit` readings after the domain `after` (from the start without it). */
export interface HostPageRequest {
  /** The tick the page belongs to: every page of a tick is served from one reading of the host. */
  tickMs: number;
  /** The previous page's `next`. */
  after?: string;
  limit: number;
}

export interface HostPage {
  /** In domain-name order. */
  readings: ReadingRow[];
  /** Present when more pages follow: pass it as the next request's `after`. */
  next?: string;
}

/** Host agent side (task queue host.<name>). Read-only, so retrying is always safe. */
export interface MeteringHostActivitiesContract {
  /**
   * Counters of every Stratus domain of the host (name → reading), in one bulk libvirt call, as one
   * payload (too large past a few thousand domains). Kept for samplers whose history already used it.
   */
  sampleHost(): Promise<Record<string, DomainReading>>;
  /** A page of the counters of every Stratus domain of the host, all pages of a tick from one bulk libvirt call. */
  sampleHostPage(req: HostPageRequest): Promise<HostPage>;
  /**
   * The domain's counters now, or null when the host has no such domain. Readings of one host are
   * taken in one bulk libvirt call shared by every meter that asks within a short window.
   */
  sampleDomain(req: { domainName: string }): Promise<DomainReading | null>;
}

/** Input of the `meterHost` workflow: the sampler of every meter of one host with one interval. */
export interface MeterHostInput {
  hostName: string;
  intervalMs: number;
  /** Carried across continue-as-new: when the next tick is due (ms since the epoch). */
  nextTickMs?: number;
  /** Ticks per run before continue-as-new (default 500); each page of a tick counts as one. */
  ticksPerRun?: number;
  /** Domains per page of a tick (default 1,000, ~136 KB a page). */
  pageSize?: number;
}

/** Input of the `meterServer` workflow (started by the conductor's startMetering). */
export interface MeterServerInput {
  serverId: string;
  /** Where the server runs and its domain's name; absent on meters started before sampling existed. */
  hostName?: string;
  domainName?: string;
  intervalMs?: number;
}
