/**
 * Metering activities on the conductor: write a meter's samples (idempotent per interval index).
 */
import type { Knex } from 'knex';
import { metrics } from '../../core/metrics';
import * as meters from '../../db/repositories/meters';
import type { SampleToRecord } from './types';

export function createMeteringControlActivities({ db }: { db: Knex }) {
  return {
    /** Writes samples once each (a seq already written is kept as is); returns how many were new. */
    async recordSamples({ serverId, samples }: { serverId: string; samples: SampleToRecord[] }): Promise<number> {
      const written = await meters.recordSamples(
        db,
        serverId,
        samples.map((s) => ({
          seq: s.seq,
          status: s.status,
          sampledAt: new Date(s.sampledAtMs),
          counters: s.reading, // a DomainReading is the counters a sample keeps
        })),
      );
      // Counted only when new, so a retried activity does not count twice.
      if (written === samples.length) for (const s of samples) metrics().meterSamples.inc({ status: s.status });
      return written;
    },
  };
}

export type MeteringControlActivities = ReturnType<typeof createMeteringControlActivities>;
