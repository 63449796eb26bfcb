/** Hypervisor hosts as their agents last reported them (admin only). */
import { Router } from 'express';
import type { Knex } from 'knex';
import { NotFound } from '../../core/errors';
import * as hosts from '../../db/repositories/hosts';
import type { components } from '../../openapi/types';
import type { IdentityService } from '../../services/identity';
import { adminOnly, authenticate } from '../auth';
import { pageQuery } from '../pagination';

function presentHost(h: hosts.Host, heartbeatSeconds: number): components['schemas']['Host'] {
  return {
    name: h.name,
    status: h.status,
    alive: hosts.isAlive(h, heartbeatSeconds),
    libvirt_uri: h.libvirtUri,
    libvirt_version: h.libvirtVersion,
    vcpus: h.vcpus,
    ram_mb: h.ramMb,
    disk_gb: h.diskGb,
    capabilities: h.capabilities,
    registered_at: new Date(h.registeredAt).toISOString(),
    last_seen_at: new Date(h.lastSeenAt).toISOString(),
  };
}

export function hostsRouter(deps: { db: Knex; identity: IdentityService; heartbeatSeconds: number }): Router {
  const { db, identity, heartbeatSeconds } = deps;
  const router = Router();
  router.get('/v1/hosts', authenticate(identity), adminOnly, async (req, res) => {
    const page = await hosts.list(db, pageQuery(req));
    res.json({ hosts: page.items.map((h) => presentHost(h, heartbeatSeconds)), next: page.next });
  });
  router.get('/v1/hosts/:host_name', authenticate(identity), adminOnly, async (req, res) => {
    const host = await hosts.get(db, req.params.host_name as string);
    if (!host) throw new NotFound(`host ${req.params.host_name} not found`);
    res.json(presentHost(host, heartbeatSeconds));
  });
  return router;
}
