/**
 * Neutron's routes: networks, subnets and ports. Everything is project-scoped: a caller sees its own
 * project's resources (admins see every project's), and another project's resource is 404, never 403.
 * Subnet and port semantics (CIDR rules, pools, IPAM) live in the repositories, which allocate
 * addresses concurrency-safely in the database; this module maps their field names onto the request
 * (`cidr` → `body.cidr`).
 */
import { randomUUID } from 'node:crypto';
import * as quotas from '../../db/repositories/quotas';
import { Router } from 'express';
import type { Knex } from 'knex';
import { Conflict, DomainError, InvalidInput, NotFound, type FieldErrors } from '../../core/errors';
import * as networks from '../../db/repositories/networks';
import * as ports from '../../db/repositories/ports';
import * as subnets from '../../db/repositories/subnets';
import type { components, operations } from '../../openapi/types';
import { hasRole, type AuthContext, type IdentityService } from '../../services/identity';
import { authenticate, callerOf, requireWriter } from '../auth';
import { pageQuery } from '../pagination';

type Schemas = components['schemas'];
type JsonBody<Op extends keyof operations> = operations[Op] extends { requestBody: { content: { 'application/json': infer B } } } ? B : never;

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

function presentNetwork(n: networks.Network, subnetIds: string[]): Schemas['Network'] {
  return { id: n.id, project_id: n.projectId, name: n.name, subnets: subnetIds, created_at: iso(n.createdAt) };
}

function presentSubnet(s: subnets.Subnet): Schemas['Subnet'] {
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

function presentPort(p: ports.Port): Schemas['Port'] {
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

export function networksRouter({ db, identity, quotaDefaults }: { db: Knex; identity: IdentityService; quotaDefaults: quotas.QuotaLimits }): Router {
  const router = Router();
  const authed = authenticate(identity);
  router.use(['/v1/networks', '/v1/subnets', '/v1/ports'], authed);

  const isAdmin = (auth: AuthContext) => hasRole(auth, 'admin');
  const visible = (auth: AuthContext, projectId: string) => isAdmin(auth) || projectId === auth.project.id;
  /** The list filter: admins see every project, others their own. */
  const scope = (auth: AuthContext) => (isAdmin(auth) ? {} : { projectId: auth.project.id });

  async function visibleNetwork(auth: AuthContext, id: string, field?: string): Promise<networks.Network> {
    const network = await networks.get(db, id);
    if (!network || !visible(auth, network.projectId)) {
      throw new NotFound(`network ${id} not found`, field ? [{ field, message: 'no such network' }] : []);
    }
    return network;
  }
  async function visibleSubnet(auth: AuthContext, id: string): Promise<subnets.Subnet> {
    const subnet = await subnets.get(db, id);
    if (!subnet || !visible(auth, subnet.projectId)) throw new NotFound(`subnet ${id} not found`);
    return subnet;
  }
  async function visiblePort(auth: AuthContext, id: string): Promise<ports.Port> {
    const port = await ports.get(db, id);
    if (!port || !visible(auth, port.projectId)) throw new NotFound(`port ${id} not found`);
    return port;
  }
  async function subnetIds(networkId: string): Promise<string[]> {
    return (await subnets.listByNetwork(db, networkId)).map((s) => s.id);
  }

  // --- networks ---------------------------------------------------------------------------
  router.get('/v1/networks', async (req, res) => {
    const page = await networks.list(db, { ...pageQuery(req), ...scope(callerOf(req)) });
    const ids = await Promise.all(page.items.map((n) => subnetIds(n.id)));
    res.json({ networks: page.items.map((n, i) => presentNetwork(n, ids[i] ?? [])), next: page.next });
  });
  router.post('/v1/networks', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as JsonBody<'createNetwork'>;
    const network = await bodyFields(['name'], () => networks.create(db, { projectId: auth.project.id, name: body.name }));
    req.log.info({ network: network.id }, 'network created');
    res.status(201).json(presentNetwork(network, []));
  });
  router.get('/v1/networks/:network_id', async (req, res) => {
    const network = await visibleNetwork(callerOf(req), req.params.network_id as string);
    res.json(presentNetwork(network, await subnetIds(network.id)));
  });
  router.delete('/v1/networks/:network_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const network = await visibleNetwork(auth, req.params.network_id as string);
    await networks.remove(db, network.id);
    res.status(204).end();
  });

  // --- subnets ----------------------------------------------------------------------------
  router.get('/v1/subnets', async (req, res) => {
    const networkId = typeof req.query.network_id === 'string' ? req.query.network_id : undefined;
    const page = await subnets.list(db, { ...pageQuery(req), ...scope(callerOf(req)), ...(networkId ? { networkId } : {}) });
    res.json({ subnets: page.items.map(presentSubnet), next: page.next });
  });
  router.post('/v1/subnets', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as JsonBody<'createSubnet'>;
    const network = await visibleNetwork(auth, body.network_id, 'body.network_id');
    const subnet = await bodyFields(SUBNET_FIELDS, () =>
      subnets.create(db, {
        networkId: network.id,
        // A subnet belongs to its network's project, whoever (an admin) created it.
        projectId: network.projectId,
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
    res.json(presentSubnet(await visibleSubnet(callerOf(req), req.params.subnet_id as string)));
  });
  router.delete('/v1/subnets/:subnet_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const subnet = await visibleSubnet(auth, req.params.subnet_id as string);
    await subnets.remove(db, subnet.id);
    res.status(204).end();
  });

  // --- ports ------------------------------------------------------------------------------
  router.get('/v1/ports', async (req, res) => {
    const { network_id, device_id } = req.query;
    const page = await ports.list(db, {
      ...pageQuery(req),
      ...scope(callerOf(req)),
      ...(typeof network_id === 'string' ? { networkId: network_id } : {}),
      ...(typeof device_id === 'string' ? { deviceId: device_id } : {}),
    });
    res.json({ ports: page.items.map(presentPort), next: page.next });
  });
  router.post('/v1/ports', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = req.body as JsonBody<'createPort'>;
    const network = await visibleNetwork(auth, body.network_id, 'body.network_id');
    const portId = randomUUID();
    const port = await bodyFields(PORT_FIELDS, () =>
      db.transaction(async (trx) => {
        // The port counts against its project's quota from the moment it exists (403 naming ports when over).
        await quotas.reserve(trx, { projectId: network.projectId, ownerId: portId, amounts: { ports: 1 }, defaults: quotaDefaults });
        await quotas.commit(trx, portId);
        return ports.create(trx, {
          id: portId,
          // Ports on a project's network belong to that project, so its members can clean them up.
          projectId: network.projectId,
          networkId: network.id,
          ...(body.fixed_ip !== undefined ? { fixedIp: body.fixed_ip } : {}),
        });
      }),
    );
    req.log.info({ port: port.id, network: network.id, ip: port.fixedIp }, 'port created');
    res.status(201).json(presentPort(port));
  });
  router.get('/v1/ports/:port_id', async (req, res) => {
    res.json(presentPort(await visiblePort(callerOf(req), req.params.port_id as string)));
  });
  router.delete('/v1/ports/:port_id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const { id } = await visiblePort(auth, req.params.port_id as string);
    await db.transaction(async (trx) => {
      // Take the port down first: the update locks its row, so a server binding it meanwhile either
      // committed before (and is seen here) or waits and then finds the port gone. A bound port
      // throws, which rolls the status change back.
      const port = await ports.setStatus(trx, id, 'DOWN');
      if (port.deviceId !== null) {
        throw new Conflict(`port ${id} is bound to server ${port.deviceId}: delete the server or detach the port first`);
      }
      await ports.remove(trx, id);
      await quotas.release(trx, id);
    });
    res.status(204).end();
  });

  return router;
}
