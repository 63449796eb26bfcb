/**
 * Usage, cost and rates (Ceilometer's API and a billing engine's). The rules live in
 * services/metering.ts; this router parses, authorizes and presents.
 *
 * Who sees what: a caller reads its own project's usage and cost (every role, readers included);
 * admins may name any project, or `all`. Rates are read by everyone and set by admins.
 */
import { Router } from 'express';
import type { Knex } from 'knex';
import type { components } from '../../openapi/types';
import type { IdentityService } from '../../services/identity';
import {
  createMeteringService,
  decimal,
  minorToDecimal,
  UNIT_BASE,
  usageScope,
  type Granularity,
  type Quantities,
  type Rate,
  type RateUnit,
} from '../../services/metering';
import { adminOnly, authenticate, callerOf } from '../auth';
import { bodyFields } from './networks';

type Schemas = components['schemas'];
const iso = (d: Date) => d.toISOString();

/** Exact `*_seconds` (3 decimals), `*_hours` rounded half-up to 6 decimals. */
function present(q: Quantities): Schemas['Usage'] {
  const secs = (v: bigint) => decimal(v, 1000n, 3);
  const hours = (unit: RateUnit) => decimal(UNIT_BASE[unit].of(q), UNIT_BASE[unit].divisor, 6);
  return {
    vcpu_seconds: secs(q.vcpuMs),
    ram_mb_seconds: secs(q.ramMbMs),
    disk_gb_seconds: secs(q.diskGbMs),
    volume_gb_seconds: secs(q.volumeGbMs),
    vcpu_hours: hours('vcpu_hour'),
    ram_gb_hours: hours('ram_gb_hour'),
    disk_gb_hours: hours('disk_gb_hour'),
    volume_gb_hours: hours('volume_gb_hour'),
    cpu_seconds: decimal(q.cpuNs, 1_000_000_000n, 9),
    block_read_bytes: Number(q.blockReadBytes),
    block_write_bytes: Number(q.blockWriteBytes),
    net_rx_bytes: Number(q.netRxBytes),
    net_tx_bytes: Number(q.netTxBytes),
    samples: q.samples,
    missed_samples: q.missed,
  };
}

function presentRate(r: Rate): Schemas['Rate'] {
  return {
    id: r.id,
    unit: r.unit,
    currency: r.currency,
    price: r.price,
    effective_from: iso(r.effectiveFrom),
    effective_to: r.effectiveTo ? iso(r.effectiveTo) : null,
    created_at: iso(r.createdAt),
  };
}

export function usageRouter({ db, identity }: { db: Knex; identity: IdentityService }): Router {
  const router = Router();
  const metering = createMeteringService({ db });
  router.use(['/v1/usage', '/v1/rates'], authenticate(identity));

  const period = (query: Record<string, unknown>) => ({
    from: new Date(String(query.from)),
    to: new Date(String(query.to)),
  });

  router.get('/v1/usage', async (req, res) => {
    const projectId = usageScope(callerOf(req), req.query.project_id as string | undefined);
    const { from, to } = period(req.query);
    const granularity = (req.query.granularity as Granularity | undefined) ?? 'day';
    const report = await metering.usage({ projectId, from, to, granularity });
    const body: Schemas['UsageReport'] = {
      project_id: projectId,
      from: iso(from),
      to: iso(to),
      granularity,
      servers: report.servers.map(({ server: s, quantities }) => ({
        server_id: s.serverId,
        name: s.name,
        project_id: s.projectId,
        vcpus: s.vcpus,
        ram_mb: s.ramMb,
        disk_gb: s.diskGb,
        metered_from: iso(s.startedAt),
        metered_until: s.stoppedAt ? iso(s.stoppedAt) : null,
        usage: present(quantities),
      })),
      volumes: report.volumes.map(({ volume: v, quantities }) => ({
        volume_id: v.volumeId,
        name: v.name,
        project_id: v.projectId,
        size_gb: v.sizeGb,
        usage: present(quantities),
      })),
      periods: report.periods.map((p) => ({ start: iso(p.start), end: iso(p.end), usage: present(p.quantities) })),
      total: present(report.total),
    };
    res.json(body);
  });

  router.get('/v1/usage/cost', async (req, res) => {
    const projectId = usageScope(callerOf(req), req.query.project_id as string | undefined);
    const { from, to } = period(req.query);
    const { lines, totals } = await metering.cost({ projectId, from, to });
    const body: Schemas['CostReport'] = {
      project_id: projectId,
      from: iso(from),
      to: iso(to),
      lines: lines.map((l) => ({
        rate_id: l.rate.id,
        unit: l.rate.unit,
        currency: l.rate.currency,
        price: l.rate.price,
        from: iso(l.from),
        to: iso(l.to),
        quantity: l.quantity,
        amount: minorToDecimal(l.amountMinor),
        amount_minor: Number(l.amountMinor),
      })),
      totals: totals.map((t) => ({ currency: t.currency, amount: minorToDecimal(t.amountMinor), amount_minor: Number(t.amountMinor) })),
    };
    res.json(body);
  });

  router.get('/v1/rates', async (_req, res) => {
    res.json({ rates: (await metering.listRates()).map(presentRate) });
  });

  router.post('/v1/rates', adminOnly, async (req, res) => {
    const body = req.body as { unit: RateUnit; currency: string; price: string; effective_from?: string };
    const rate = await bodyFields(['price', 'effective_from'], () =>
      metering.createRate(callerOf(req), {
        unit: body.unit,
        currency: body.currency,
        price: body.price,
        effectiveFrom: body.effective_from ? new Date(body.effective_from) : new Date(),
      }),
    );
    req.log.info({ rate: rate.id, unit: rate.unit, price: rate.price }, 'rate set');
    res.status(201).json(presentRate(rate));
  });

  router.get('/v1/rates/:rate_id', async (req, res) => {
    res.json(presentRate(await metering.getRate(req.params.rate_id as string)));
  });

  router.delete('/v1/rates/:rate_id', adminOnly, async (req, res) => {
    await metering.removeRate(callerOf(req), req.params.rate_id as string);
    res.status(204).end();
  });

  return router;
}
