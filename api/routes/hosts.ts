/** Hypervisor hosts as their agents last reported them, with what is claimed on them (admin only). */
import { Router } from 'express';
import type { Knex } from 'knex';
import type { components } from '../../openapi/types';
import { createHostService, type HostView } from '../../services/hosts';
import { allocatable, free, type AllocationRatios, type Resources } from '../../services/scheduler';
import type { IdentityService } from '../../services/identity';
import { adminOnly, authenticate, callerOf } from '../auth';
import { pageQuery } from '../pagination';

type HostsDeps = { db: Knex; identity: IdentityService; heartbeatSeconds: number; ratios: AllocationRatios };

const asApi = (r: Resources) => ({ vcpus: r.vcpus, ram_mb: r.ramMb, disk_gb: r.diskGb });

function presentHost({ host: h, state }: HostView): components['schemas']['Host'] {
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
    claimed: asApi(state.claimed),
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

export function hostsRouter({ db, identity, heartbeatSeconds, ratios }: HostsDeps): Router {
  const service = createHostService(db, heartbeatSeconds, ratios);
  const router = Router();
  router.use('/v1/hosts', authenticate(identity), adminOnly);
  router.get('/v1/hosts', async (req, res) => {
    const page = await service.listViews(callerOf(req), pageQuery(req));
    res.json({ hosts: page.items.map(presentHost), next: page.next });
  });
  router.get('/v1/hosts/:host_name', async (req, res) => {
    res.json(presentHost(await service.showView(callerOf(req), req.params.host_name as string)));
  });
  router.patch('/v1/hosts/:host_name', async (req, res) => {
    const name = req.params.host_name as string;
    const body = req.body as HostPatch;
    const view = await service.updateSettings(callerOf(req), name, {
      enabled: body.enabled,
      availabilityZone: body.availability_zone,
      cpuAllocationRatio: body.cpu_allocation_ratio,
      ramAllocationRatio: body.ram_allocation_ratio,
      diskAllocationRatio: body.disk_allocation_ratio,
    });
    req.log.info({ host: name, patch: body }, 'host settings changed');
    res.json(presentHost(view));
  });
  return router;
}
