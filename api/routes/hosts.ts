/** Hypervisor hosts as their agents last reported them, with what is claimed on them (admin only). */
import { Router } from 'express';
import type { Knex } from 'knex';
import { NotFound } from '../../core/errors';
import { toHostState } from '../../activities/compute/placement';
import * as claims from '../../db/repositories/claims';
import * as hosts from '../../db/repositories/hosts';
import type { components } from '../../openapi/types';
import { allocatable, free, type AllocationRatios, type Resources } from '../../services/scheduler';
import type { IdentityService } from '../../services/identity';
import { adminOnly, authenticate } from '../auth';
import { pageQuery } from '../pagination';

type HostsDeps = { db: Knex; identity: IdentityService; heartbeatSeconds: number; ratios: AllocationRatios };

const asApi = (r: Resources) => ({ vcpus: r.vcpus, ram_mb: r.ramMb, disk_gb: r.diskGb });

function presentHost(h: hosts.Host, claimed: Resources, deps: HostsDeps): components['schemas']['Host'] {
  const state = toHostState(h, claimed, { ratios: deps.ratios, ramWeigher: 'spread' }, deps.heartbeatSeconds, Date.now());
  return {
    name: h.name,
    status: h.status,
    alive: state.alive,
    libvirt_uri: h.libvirtUri,
    libvirt_version: h.libvirtVersion,
    vcpus: h.vcpus,
    ram_mb: h.ramMb,
    disk_gb: h.diskGb,
    capabilities: h.capabilities,
    registered_at: new Date(h.registeredAt).toISOString(),
    last_seen_at: new Date(h.lastSeenAt).toISOString(),
    enabled: h.enabled,
    state: !h.enabled ? 'disabled' : state.alive ? 'up' : 'down',
    availability_zone: h.availabilityZone,
    allocation_ratios: state.ratios,
    capacity: asApi(allocatable(state)),
    claimed: asApi(claimed),
    free: asApi(free(state)),
    last_build_failure_at: h.lastBuildFailureAt ? new Date(h.lastBuildFailureAt).toISOString() : null,
  };
}

type HostPatch = {
  enabled?: boolean;
  availability_zone?: string;
  cpu_allocation_ratio?: number | null;
  ram_allocation_ratio?: number | null;
  disk_allocation_ratio?: number | null;
};

export function hostsRouter(deps: HostsDeps): Router {
  const { db, identity } = deps;
  const router = Router();
  router.use('/v1/hosts', authenticate(identity), adminOnly);
  router.get('/v1/hosts', async (req, res) => {
    const [page, usage] = await Promise.all([hosts.list(db, pageQuery(req)), claims.usageByHost(db)]);
    res.json({ hosts: page.items.map((h) => presentHost(h, usage[h.name] ?? claims.NONE, deps)), next: page.next });
  });
  router.get('/v1/hosts/:host_name', async (req, res) => {
    const name = req.params.host_name as string;
    const host = await hosts.get(db, name);
    if (!host) throw new NotFound(`host ${name} not found`);
    res.json(presentHost(host, await claims.usage(db, name), deps));
  });
  router.patch('/v1/hosts/:host_name', async (req, res) => {
    const name = req.params.host_name as string;
    const body = req.body as HostPatch;
    const host = await hosts.updateSettings(db, name, {
      enabled: body.enabled,
      availabilityZone: body.availability_zone,
      cpuAllocationRatio: body.cpu_allocation_ratio,
      ramAllocationRatio: body.ram_allocation_ratio,
      diskAllocationRatio: body.disk_allocation_ratio,
    });
    if (!host) throw new NotFound(`host ${name} not found`);
    req.log.info({ host: name, patch: body }, 'host settings changed');
    res.json(presentHost(host, await claims.usage(db, name), deps));
  });
  return router;
}

