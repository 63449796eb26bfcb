/**
 * Neutron's routes: networks, subnets and ports, through the network service (services/networks.ts:
 * project-scoped reads by the one visibility rule, IPAM in the repositories). This module parses,
 * presents, and maps the rules' field names onto the request (`cidr` → `body.cidr`).
 */
import { Router } from 'express';
import type { Knex } from 'knex';
import { Conflict, DomainError, InvalidInput, NotFound, type FieldErrors } from '../../core/errors';
import type { components } from '../../openapi/types';
import type { QuotaLimits } from '../../services/compute';
import type { IdentityService } from '../../services/identity';
import { createNetworkService, type NetworkDetails, type Port, type Subnet } from '../../services/networks';
import { authenticate, callerOf, requireWriter } from '../auth';
import type { JsonBody } from '../body';
import { pageQuery } from '../pagination';

type Schemas = components['schemas'];

const iso = (d: Date | string) => new Date(d).toISOString();

/**
 * Runs `work`; a domain error whose fields name any of `names` (as repositories do: `cidr`,
 * `fixed_ip`) comes out naming them as request fields (`body.cidr`, `body.fixed_ip`).
 */
export async function bodyFields<T>(names: readonly string[], work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof DomainError) || !err.fields.some((f) => names.includes(f.field))) throw err;
    const fields: FieldErrors = err.fields.map((f) => (names.includes(f.field) ? { ...f, field: `body.${f.field}` } : f));
    if (err instanceof InvalidInput) throw new InvalidInput(err.message, fields);
    if (err instanceof NotFound) throw new NotFound(err.message, fields);
    if (err instanceof Conflict) throw new Conflict(err.message, fields);
    throw err;
  }
}

function presentNetwork({ network: n, subnetIds }: NetworkDetails): Schemas['Network'] {
  return { id: n.id, project_id: n.projectId, name: n.name, subnets: subnetIds, created_at: iso(n.createdAt) };
}

function presentSubnet(s: Subnet): Schemas['Subnet'] {
  return {
    id: s.id,
    network_id: s.networkId,
    project_id: s.projectId,
    ip_version: 4,
    cidr: s.cidr,
    gateway_ip: s.gatewayIp,
    allocation_pools: s.allocationPools.map(({ start, end }) => ({ start, end })),
    dns_nameservers: s.dnsNameservers,
    created_at: iso(s.createdAt),
  };
}

function presentPort(p: Port): Schemas['Port'] {
  return {
    id: p.id,
    project_id: p.projectId,
    network_id: p.networkId,
    subnet_id: p.subnetId,
    mac_address: p.mac,
    fixed_ip: p.fixedIp,
    device_id: p.deviceId,
    device_owner: p.deviceOwner,
    status: p.status,
    created_at: iso(p.createdAt),
  };
}

const SUBNET_FIELDS = ['network_id', 'cidr', 'gateway_ip', 'allocation_pools', 'dns_nameservers'];
const PORT_FIELDS = ['network_id', 'fixed_ip'];

export function networksRouter({ db, identity, quotaDefaults }: { db: Knex; identity: IdentityService; quotaDefaults: QuotaLimits }): Router {
  const router = Router();
  const authed = authenticate(identity);
  router.use(['/v1/networks', '/v1/subnets', '/v1/ports'], authed);

  const net = createNetworkService(db, quotaDefaults);

  // --- networks ---------------------------------------------------------------------------
  router.get('/v1/networks', async (req, res) => {
    const page = await net.listNetworks(callerOf(req), pageQuery(req));
    res.json({ networks: page.items.map(presentNetwork), next: page.next });
  });
  router.post('/v1/networks', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as JsonBody<'createNetwork'>;
    const network = await bodyFields(['name'], () => net.createNetwork(auth, body.name));
    req.log.info({ network: network.id }, 'network created');
    res.status(201).json(presentNetwork({ network, subnetIds: [] }));
  });
  router.get('/v1/networks/:network_id', async (req, res) => {
    res.json(presentNetwork(await net.showNetwork(callerOf(req), req.params.network_id as string)));
  });
  router.delete('/v1/networks/:network_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    await net.deleteNetwork(auth, req.params.network_id as string);
    res.status(204).end();
  });

  // --- subnets ----------------------------------------------------------------------------
  router.get('/v1/subnets', async (req, res) => {
    const networkId = typeof req.query.network_id === 'string' ? req.query.network_id : undefined;
    const page = await net.listSubnets(callerOf(req), { ...pageQuery(req), ...(networkId ? { networkId } : {}) });
    res.json({ subnets: page.items.map(presentSubnet), next: page.next });
  });
  router.post('/v1/subnets', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as JsonBody<'createSubnet'>;
    const network = await net.getNetwork(auth, body.network_id, 'body.network_id');
    const subnet = await bodyFields(SUBNET_FIELDS, () =>
      net.createSubnet(network, {
        cidr: body.cidr,
        ...(body.gateway_ip !== undefined ? { gatewayIp: body.gateway_ip } : {}),
        ...(body.allocation_pools !== undefined ? { allocationPools: body.allocation_pools } : {}),
        ...(body.dns_nameservers !== undefined ? { dnsNameservers: body.dns_nameservers } : {}),
      }),
    );
    req.log.info({ subnet: subnet.id, network: network.id, cidr: subnet.cidr }, 'subnet created');
    res.status(201).json(presentSubnet(subnet));
  });
  router.get('/v1/subnets/:subnet_id', async (req, res) => {
    res.json(presentSubnet(await net.getSubnet(callerOf(req), req.params.subnet_id as string)));
  });
  router.delete('/v1/subnets/:subnet_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    await net.deleteSubnet(auth, req.params.subnet_id as string);
    res.status(204).end();
  });

  // --- ports ------------------------------------------------------------------------------
  router.get('/v1/ports', async (req, res) => {
    const { network_id, device_id } = req.query;
    const page = await net.listPorts(callerOf(req), {
      ...pageQuery(req),
      ...(typeof network_id === 'string' ? { networkId: network_id } : {}),
      ...(typeof device_id === 'string' ? { deviceId: device_id } : {}),
    });
    res.json({ ports: page.items.map(presentPort), next: page.next });
  });
  router.post('/v1/ports', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as JsonBody<'createPort'>;
    const network = await net.getNetwork(auth, body.network_id, 'body.network_id');
    const port = await bodyFields(PORT_FIELDS, () => net.createPort(network, body.fixed_ip));
    req.log.info({ port: port.id, network: network.id, ip: port.fixedIp }, 'port created');
    res.status(201).json(presentPort(port));
  });
  router.get('/v1/ports/:port_id', async (req, res) => {
    res.json(presentPort(await net.getPort(callerOf(req), req.params.port_id as string)));
  });
  router.delete('/v1/ports/:port_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    await net.deletePort(auth, req.params.port_id as string);
    res.status(204).end();
  });

  return router;
}
