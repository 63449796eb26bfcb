/**
 * A domain's reading as it travels in a page of a host's tick (host agent → workflow history →
 * conductor): a tuple rather than an object, since every page is a Temporal payload and is kept in
 * the sampler's history. With realistic counters a reading is ~136 bytes of JSON as a row against
 * ~234 as a keyed object (test/unit/metering-pages.test.ts measures it).
 */
import type { DomainReading } from './types';

export type ReadingRow = [
  domainName: string,
  powerState: string,
  cpuTimeNs: number | null,
  memoryKiB: number | null,
  blockReadBytes: number | null,
  blockWriteBytes: number | null,
  netRxBytes: number | null,
  netTxBytes: number | null,
];

export function toReadingRow(domainName: string, r: DomainReading): ReadingRow {
  return [domainName, r.powerState, r.cpuTimeNs, r.memoryKiB, r.blockReadBytes, r.blockWriteBytes, r.netRxBytes, r.netTxBytes];
}

export function fromReadingRow([, powerState, cpuTimeNs, memoryKiB, blockReadBytes, blockWriteBytes, netRxBytes, netTxBytes]: ReadingRow): DomainReading {
  return { powerState, cpuTimeNs, memoryKiB, blockReadBytes, blockWriteBytes, netRxBytes, netTxBytes };
}
