/**
 * Metering activities on the conductor: write the samples of a host's tick and a meter's final
 * sample (each interval index once).
 */
import type { Knex } from 'knex';
import { metrics } from '../../core/metrics';
import * as meters from '../../db/repositories/meters';
import { fromReadingRow } from './reading-rows';
import type { DomainReading, ReadingRow } from './types';

function countWritten(written: Record<meters.SampleStatus, number>): void {
  for (const status of ['ok', 'missed'] as const) if (written[status] > 0) metrics().meterSamples.inc({ status }, written[status]);
}

export function createMeteringControlActivities({ db }: { db: Knex }) {
  return {
    /**
     * One tick of a host's sampler: a sample for every active meter of the host with this interval
     * (`readings` null: the host did not answer, every meter gets a gap). Returns how many meters are
     * active, so an idle sampler can end. A paged tick ends with this call and null readings: meters
     * a page sampled keep their sample (each interval index is written once), the others get a gap.
     */
    async recordHostTick(req: { hostName: string; intervalMs: number; tickMs: number; readings: Record<string, DomainReading> | null }): Promise<{ active: number }> {
      const active = await meters.activeOnHost(db, req.hostName, req.intervalMs);
      const written = await meters.recordTick(
        db,
        req.tickMs,
        active.map((meter) => ({ meter, counters: req.readings?.[meter.domainName] ?? null })),
      );
      countWritten(written);
      return { active: active.length };
    },

    /** A page of a host's tick: the samples of the active meters whose domains the page holds. */
    async recordHostPage(req: { hostName: string; intervalMs: number; tickMs: number; readings: ReadingRow[] }): Promise<void> {
      const byDomain = new Map(req.readings.map((row) => [row[0], fromReadingRow(row)]));
      const active = await meters.activeOnHost(db, req.hostName, req.intervalMs, [...byDomain.keys()]);
      countWritten(await meters.recordTick(db, req.tickMs, active.map((meter) => ({ meter, counters: byDomain.get(meter.domainName) ?? null }))));
    },

    /** The final sample of a stopped meter (once). */
    async recordFinalSample(req: { serverId: string; atMs: number; reading: DomainReading | null }): Promise<void> {
      if (await meters.recordFinal(db, req.serverId, new Date(req.atMs), req.reading)) metrics().meterSamples.inc({ status: 'final' });
    },

  };
}

export type MeteringControlActivities = ReturnType<typeof createMeteringControlActivities>;
