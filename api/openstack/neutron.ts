/**
 * Neutron v2.0 (network) over the network service (services/networks.ts, where IPAM and every rule
 * live): networks, subnets and ports (create, list, show, delete), the exact filters the clients
 * send (`name`, `id`, `status`, `network_id`, `device_id`, `fixed_ips=ip_address=…`, …; `fields`
 * is ignored, full objects are returned), `limit`/`marker` with `<collection>_links`, and the
 * extensions Stratus really implements.
 *
 * What Stratus does not model is answered honestly: a filter on a value Stratus never has (a shared
 * or external network, a DOWN network, IPv6) lists nothing, and a create asking for one is a 400.
 * An update (PUT) changes a name; other attributes only at the values Stratus has.
 */
import { Router, type Request } from 'express';
import { Conflict, DomainError, InvalidInput, NotFound } from '../../core/errors';
import { createNetworkService, type NetworkDetails, type Port, type Subnet } from '../../services/networks';
import { callerOf, requireWriter } from '../auth';
import { OpenStackError } from './errors';
import type { OpenStackDeps } from './index';
import { osPage, pageLinks, type OsPage } from './paging';
import { isoSecondsZ } from './time';

/** The MTU of the libvirt networks Stratus defines (libvirt's default bridge MTU). */
const MTU = 1500;

function presentNetwork({ network: n, subnetIds }: NetworkDetails) {
  const at = isoSecondsZ(n.createdAt);
  return {
    id: n.id,
    name: n.name,
    status: 'ACTIVE',
    admin_state_up: true,
    shared: false,
    'router:external': false,
    subnets: subnetIds,
    mtu: MTU,
    port_security_enabled: false,
    project_id: n.projectId,
    tenant_id: n.projectId,
    description: '',
    tags: [],
    // Networks are never changed after creation.
    revision_number: 1,
    created_at: at,
    updated_at: at,
  };
}

function presentSubnet(s: Subnet) {
  const at = isoSecondsZ(s.createdAt);
  return {
    id: s.id,
    name: s.name,
    network_id: s.networkId,
    ip_version: 4,
    cidr: s.cidr,
    gateway_ip: s.gatewayIp,
    allocation_pools: s.allocationPools.map(({ start, end }) => ({ start, end })),
    enable_dhcp: true,
    dns_nameservers: s.dnsNameservers,
    host_routes: [],
    ipv6_address_mode: null,
    ipv6_ra_mode: null,
    subnetpool_id: null,
    service_types: [],
    project_id: s.projectId,
    tenant_id: s.projectId,
    description: '',
    tags: [],
    revision_number: 1,
    created_at: at,
    updated_at: at,
  };
}

/** Stratus's device owner `compute` is Nova's `compute:nova`. */
const DEVICE_OWNERS: Record<string, string> = { compute: 'compute:nova' };

function presentPort(p: Port) {
  const at = isoSecondsZ(p.createdAt);
  return {
    id: p.id,
    name: p.name,
    network_id: p.networkId,
    mac_address: p.mac,
    fixed_ips: [{ subnet_id: p.subnetId, ip_address: p.fixedIp }],
    device_id: p.deviceId ?? '',
    device_owner: p.deviceOwner === null ? '' : (DEVICE_OWNERS[p.deviceOwner] ?? p.deviceOwner),
    status: p.status,
    admin_state_up: true,
    security_groups: [],
    port_security_enabled: false,
    allowed_address_pairs: [],
    project_id: p.projectId,
    tenant_id: p.projectId,
    description: '',
    tags: [],
    revision_number: 1,
    created_at: at,
    updated_at: at,
  };
}

// --- requests ----------------------------------------------------------------------------

const badRequest = (message: string) => new OpenStackError(400, message, 'HTTPBadRequest');

/** Every value of a query parameter (`?id=a&id=b`), or undefined when absent. */
function values(req: Request, name: string): string[] | undefined {
  const raw = req.query[name];
  if (raw === undefined) return undefined;
  return (Array.isArray(raw) ? raw : [raw]).filter((v): v is string => typeof v === 'string');
}

/** False when a filter on `name` asks for something other than `only` (e.g. `shared=true`): nothing matches. */
function onlyValue(req: Request, name: string, only: string): boolean {
  const v = values(req, name);
  return v === undefined || v.some((x) => x.toLowerCase() === only.toLowerCase());
}

/** `?project_id=` or `?tenant_id=`. */
function projectFilter(req: Request): { projectId?: string } {
  const id = values(req, 'project_id')?.[0] ?? values(req, 'tenant_id')?.[0];
  return id !== undefined ? { projectId: id } : {};
}

function pageOf(page: OsPage) {
  return { limit: page.limit, ...(page.marker ? { afterId: page.marker } : {}) };
}

/** The body's wrapper object (`{"network": {…}}`), refusing attributes Stratus does not know (as Neutron does). */
function wrapped(req: Request, key: string, known: readonly string[]): Record<string, unknown> {
  const body = (req.body as Record<string, unknown> | undefined)?.[key];
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest(`The body must be {"${key}": {…}}.`);
  const unknown = Object.keys(body).filter((k) => !known.includes(k));
  if (unknown.length > 0) throw badRequest(`Unrecognized attribute(s) '${unknown.join(', ')}' (not supported by Stratus here)`);
  return body as Record<string, unknown>;
}

/** Attributes Stratus supports only at their default value, and why. */
type Defaults = ReadonlyArray<readonly [key: string, value: unknown, why: string]>;

const NO_DESCRIPTION = ['description', '', 'Stratus keeps no description.'] as const;
const NETWORK_DEFAULTS: Defaults = [
  ['admin_state_up', true, 'Stratus networks are always up.'],
  ['shared', false, 'Stratus networks belong to one project.'],
  ['router:external', false, 'Stratus has no external networks.'],
  ['port_security_enabled', false, 'Stratus has no port security.'],
  NO_DESCRIPTION,
];
const SUBNET_DEFAULTS: Defaults = [
  ['ip_version', 4, 'Stratus subnets are IPv4.'],
  ['enable_dhcp', true, 'Stratus always serves DHCP on its subnets.'],
  ['host_routes', [], 'Stratus keeps no host routes.'],
  ['service_types', [], 'Stratus has no subnet service types.'],
  ['subnetpool_id', null, 'Stratus has no subnet pools.'],
  ['ipv6_ra_mode', null, 'Stratus subnets are IPv4.'],
  ['ipv6_address_mode', null, 'Stratus subnets are IPv4.'],
  NO_DESCRIPTION,
];
const PORT_DEFAULTS: Defaults = [
  ['admin_state_up', true, 'Stratus ports are always up.'],
  ['device_id', '', 'a port is bound by creating a server with it.'],
  ['device_owner', '', 'a port is bound by creating a server with it.'],
  ['security_groups', [], 'Stratus has no security groups.'],
  ['port_security_enabled', false, 'Stratus has no port security.'],
  NO_DESCRIPTION,
];

/**
 * The body's wrapper object (`{"network": {…}}`) holding only `keys` and the `defaults`' keys, each
 * of those at its default (else a 400 saying why; `null` stands for the default).
 */
function request(req: Request, key: string, keys: readonly string[], defaults: Defaults): Record<string, unknown> {
  const body = wrapped(req, key, [...keys, ...defaults.map(([k]) => k)]);
  for (const [k, value, why] of defaults) {
    if (body[k] !== undefined && body[k] !== null && JSON.stringify(body[k]) !== JSON.stringify(value)) throw badRequest(`Invalid input for ${k}: ${why}`);
  }
  return body;
}

function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length > 255) throw badRequest(`Invalid input for ${key}: a string of at most 255 characters.`);
  return v;
}

/** The request's project: the caller's own (Stratus creates in the caller's project or the network's). */
function ownProjectOnly(body: Record<string, unknown>, projectId: string): void {
  for (const key of ['project_id', 'tenant_id']) {
    if (body[key] !== undefined && body[key] !== projectId) throw badRequest(`Invalid input for ${key}: Stratus creates it in project ${projectId}.`);
  }
}

/**
 * Runs `work`, turning the service's domain errors into Neutron's typed errors
 * (`NetworkNotFound`, `NetworkInUse`, `InvalidInput`, …) with the service's message.
 */
async function neutron<T>(kind: 'Network' | 'Subnet' | 'Port', work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof DomainError)) throw err;
    const about = (field: string) => err.fields.some((f) => f.field.endsWith(field));
    if (err instanceof NotFound) throw new OpenStackError(404, err.message, about('network_id') ? 'NetworkNotFound' : `${kind}NotFound`);
    if (err instanceof Conflict) {
      const type = about('fixed_ip') ? 'IpAddressInUse' : /no free IP/i.test(err.message) ? 'IpAddressGenerationFailure' : `${kind}InUse`;
      throw new OpenStackError(409, err.message, type);
    }
    if (err instanceof InvalidInput) throw new OpenStackError(400, err.message, 'InvalidInput');
    throw err;
  }
}

/** What Stratus implements of Neutron's extensions: only attributes it really renders. */
const EXTENSIONS = [
  { alias: 'project-id', name: 'project_id field enabled', description: 'Extension that indicates that project_id field is enabled.' },
  {
    alias: 'standard-attr-timestamp',
    name: 'Resource timestamps',
    description: 'Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.',
  },
].map((e) => ({ ...e, links: [], updated: '2026-12-01T00:00:00-00:00' }));

export function neutronRouter(deps: OpenStackDeps): Router {
  const router = Router({ mergeParams: true });
  const net = createNetworkService(deps.db, deps.quotaDefaults);
  const links = (req: Request, items: ReadonlyArray<{ id: string }>, page: OsPage, more: boolean) =>
    more ? pageLinks(req, deps.config.api.publicUrl, items, page) : [];

  router.get('/extensions', (_req, res) => {
    res.json({ extensions: EXTENSIONS });
  });
  router.get('/extensions/:alias', (req, res) => {
    const ext = EXTENSIONS.find((e) => e.alias === req.params.alias);
    if (!ext) throw new OpenStackError(404, `Extension with alias ${String(req.params.alias)} does not exist`, 'ExtensionNotFound');
    res.json({ extension: ext });
  });
  // Stratus has no routers or floating IPs: their lists are honestly empty (Ansible's server module asks).
  router.get('/routers', (_req, res) => {
    res.json({ routers: [] });
  });
  router.get('/floatingips', (_req, res) => {
    res.json({ floatingips: [] });
  });

  // --- networks ---------------------------------------------------------------------------
  router.get('/networks', async (req, res) => {
    const page = osPage(req);
    const possible =
      onlyValue(req, 'status', 'ACTIVE') &&
      onlyValue(req, 'shared', 'false') &&
      onlyValue(req, 'router:external', 'false') &&
      onlyValue(req, 'admin_state_up', 'true');
    const found = possible
      ? await net.listNetworks(callerOf(req), {
          ...pageOf(page),
          ...projectFilter(req),
          filters: { ...(values(req, 'id') ? { id: values(req, 'id') } : {}), ...(values(req, 'name') ? { name: values(req, 'name') } : {}) },
        })
      : { items: [], next: null };
    const items = found.items.map(presentNetwork);
    res.json({ networks: items, networks_links: links(req, items, page, found.next !== null) });
  });
  router.post('/networks', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = request(req, 'network', ['name', 'project_id', 'tenant_id'], NETWORK_DEFAULTS);
    ownProjectOnly(body, auth.project.id);
    const name = optionalString(body, 'name');
    if (!name) throw badRequest('Invalid input for name: Stratus networks need a name.');
    const network = await neutron('Network', () => net.createNetwork(auth, name));
    req.log.info({ network: network.id }, 'network created (neutron)');
    res.status(201).json({ network: presentNetwork({ network, subnetIds: [] }) });
  });
  router.get('/networks/:id', async (req, res) => {
    res.json({ network: presentNetwork(await neutron('Network', () => net.showNetwork(callerOf(req), req.params.id as string))) });
  });
  router.put('/networks/:id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const name = optionalString(request(req, 'network', ['name'], NETWORK_DEFAULTS), 'name');
    const id = req.params.id as string;
    const network = await neutron('Network', () => (name ? net.renameNetwork(auth, id, name) : net.showNetwork(auth, id)));
    res.json({ network: presentNetwork(network) });
  });
  router.delete('/networks/:id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    await neutron('Network', () => net.deleteNetwork(auth, req.params.id as string));
    res.status(204).end();
  });

  // --- subnets ----------------------------------------------------------------------------
  router.get('/subnets', async (req, res) => {
    const page = osPage(req);
    const possible = onlyValue(req, 'ip_version', '4') && onlyValue(req, 'enable_dhcp', 'true');
    const filters = Object.fromEntries(
      (['id', 'name', 'network_id', 'cidr', 'gateway_ip'] as const).flatMap((k) => (values(req, k) ? [[k, values(req, k)]] : [])),
    );
    const found = possible ? await net.listSubnets(callerOf(req), { ...pageOf(page), ...projectFilter(req), filters }) : { items: [], next: null };
    const items = found.items.map(presentSubnet);
    res.json({ subnets: items, subnets_links: links(req, items, page, found.next !== null) });
  });
  router.post('/subnets', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = request(
      req,
      'subnet',
      ['name', 'network_id', 'cidr', 'gateway_ip', 'allocation_pools', 'dns_nameservers', 'project_id', 'tenant_id'],
      SUBNET_DEFAULTS,
    );
    if (typeof body.network_id !== 'string') throw badRequest('Invalid input for network_id: a network id is required.');
    if (typeof body.cidr !== 'string') throw badRequest('Invalid input for cidr: Stratus needs a CIDR (subnet pools are not supported).');
    const name = optionalString(body, 'name');
    const networkId = body.network_id;
    const network = await neutron('Network', () => net.getNetwork(auth, networkId, 'network_id'));
    ownProjectOnly(body, network.projectId);
    const subnet = await neutron('Subnet', () =>
      net.createSubnet(network, {
        cidr: body.cidr as string,
        ...(name !== undefined ? { name } : {}),
        ...(body.gateway_ip !== undefined ? { gatewayIp: body.gateway_ip as string | null } : {}),
        ...(body.allocation_pools !== undefined && body.allocation_pools !== null ? { allocationPools: body.allocation_pools as Subnet['allocationPools'] } : {}),
        ...(body.dns_nameservers !== undefined && body.dns_nameservers !== null ? { dnsNameservers: body.dns_nameservers as string[] } : {}),
      }),
    );
    req.log.info({ subnet: subnet.id, network: network.id, cidr: subnet.cidr }, 'subnet created (neutron)');
    res.status(201).json({ subnet: presentSubnet(subnet) });
  });
  router.get('/subnets/:id', async (req, res) => {
    const subnet = await neutron('Subnet', () => net.getSubnet(callerOf(req), req.params.id as string));
    res.json({ subnet: presentSubnet(subnet) });
  });
  router.put('/subnets/:id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const name = optionalString(request(req, 'subnet', ['name'], SUBNET_DEFAULTS), 'name');
    const id = req.params.id as string;
    const subnet = await neutron('Subnet', () => (name !== undefined ? net.renameSubnet(auth, id, name) : net.getSubnet(auth, id)));
    res.json({ subnet: presentSubnet(subnet) });
  });
  router.delete('/subnets/:id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    await neutron('Subnet', () => net.deleteSubnet(auth, req.params.id as string));
    res.status(204).end();
  });

  // --- ports ------------------------------------------------------------------------------
  router.get('/ports', async (req, res) => {
    const page = osPage(req);
    // `fixed_ips=ip_address=10.0.0.5` and `fixed_ips=subnet_id=<id>`.
    const fixed = (values(req, 'fixed_ips') ?? []).map((f) => f.split('=', 2) as [string, string?]);
    const fixedOf = (key: string) => fixed.filter(([k]) => k === key).map(([, v]) => v ?? '');
    // Stratus's one device owner is `compute` (Nova's `compute:nova`); any other matches nothing.
    const owners = values(req, 'device_owner')?.map((o) => Object.entries(DEVICE_OWNERS).find(([, os]) => os === o)?.[0] ?? `unknown:${o}`);
    const filters = {
      ...Object.fromEntries((['id', 'name', 'network_id', 'device_id', 'status'] as const).flatMap((k) => (values(req, k) ? [[k, values(req, k)]] : []))),
      ...(values(req, 'mac_address') ? { mac: values(req, 'mac_address') } : {}),
      ...(owners ? { device_owner: owners } : {}),
      ...(fixedOf('ip_address').length > 0 ? { fixed_ip: fixedOf('ip_address') } : {}),
      ...(fixedOf('subnet_id').length > 0 ? { subnet_id: fixedOf('subnet_id') } : {}),
    };
    const found = await net.listPorts(callerOf(req), { ...pageOf(page), ...projectFilter(req), filters });
    const items = found.items.map(presentPort);
    res.json({ ports: items, ports_links: links(req, items, page, found.next !== null) });
  });
  router.post('/ports', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const body = request(req, 'port', ['name', 'network_id', 'fixed_ips', 'project_id', 'tenant_id'], PORT_DEFAULTS);
    if (typeof body.network_id !== 'string') throw badRequest('Invalid input for network_id: a network id is required.');
    const networkId = body.network_id;
    const name = optionalString(body, 'name');
    const fixedIps = body.fixed_ips ?? [];
    if (!Array.isArray(fixedIps) || fixedIps.length > 1) throw badRequest('Invalid input for fixed_ips: Stratus gives a port one fixed IP.');
    const wanted = fixedIps[0] as { ip_address?: unknown; subnet_id?: unknown } | undefined;
    if (wanted && typeof wanted.ip_address !== 'string') {
      throw badRequest('Invalid input for fixed_ips: give an ip_address (Stratus picks the subnet from it; a subnet_id alone is not supported).');
    }
    const network = await neutron('Network', () => net.getNetwork(auth, networkId, 'network_id'));
    ownProjectOnly(body, network.projectId);
    const port = await neutron('Port', () => net.createPort(network, wanted?.ip_address as string | undefined, name));
    if (wanted?.subnet_id !== undefined && wanted.subnet_id !== port.subnetId) {
      // The address is in another subnet of the network than the one asked for: undo, and say so.
      await net.deletePort(auth, port.id);
      throw badRequest(`Invalid input for fixed_ips: ${String(wanted.ip_address)} is not in subnet ${String(wanted.subnet_id)}.`);
    }
    req.log.info({ port: port.id, network: network.id, ip: port.fixedIp }, 'port created (neutron)');
    res.status(201).json({ port: presentPort(port) });
  });
  router.get('/ports/:id', async (req, res) => {
    res.json({ port: presentPort(await neutron('Port', () => net.getPort(callerOf(req), req.params.id as string))) });
  });
  router.put('/ports/:id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    const name = optionalString(request(req, 'port', ['name'], PORT_DEFAULTS), 'name');
    const id = req.params.id as string;
    const port = await neutron('Port', () => (name !== undefined ? net.renamePort(auth, id, name) : net.getPort(auth, id)));
    res.json({ port: presentPort(port) });
  });
  router.delete('/ports/:id', async (req, res) => {
    const auth = callerOf(req);
    requireWriter(auth);
    await neutron('Port', () => net.deletePort(auth, req.params.id as string));
    res.status(204).end();
  });

  return router;
}
