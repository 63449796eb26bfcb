/**
 * Nova v2.1 (compute), rendered at microversion 2.1: flavors, servers, their actions, console,
 * addresses, volume attachments and instance actions. A translation at the edge: each route parses
 * Nova's request, hands it to the same compute/flavor services and server commands as `/v1`
 * (api/server-commands.ts: the same rules, the same durable workflows, so a server made through one
 * API is managed through the other) and renders Nova's shape (nova-presenters.ts).
 *
 * Where Stratus cannot do what a Nova request asks, the request is a 400 saying so rather than a
 * silent approximation: booting from a volume, a volume made from an image, hard reboots, several
 * servers in one request (use POST /v1/server-batches), automatic network allocation.
 */
import { Router, type Request, type Response } from 'express';
import { DomainError, NotFound } from '../../core/errors';
import { createComputeService, createConsoleService, type CreateServerBody, type ServerDetails } from '../../services/compute';
import { createFlavorService } from '../../services/flavors';
import { hasRole } from '../../services/identity';
import { callerOf } from '../auth';
import { conductorOf, storedProgress } from '../operations';
import { serverCommands } from '../server-commands';
import { OpenStackError } from './errors';
import type { OpenStackDeps } from './index';
import {
  flavorSummary,
  flavorView,
  instanceActionView,
  novaLinks,
  serverAddresses,
  serverSummary,
  serverView,
  volumeAttachmentView,
} from './nova-presenters';
import { osPage, pageLinks, type OsPage } from './paging';
import { isoMicros, maybe } from './time';

/** The header that names the Stratus operation (and so the Temporal workflow) a request started. */
export const OPERATION_HEADER = 'X-Stratus-Operation-Id';

/** How much of the serial console `os-getConsoleOutput` reads (its tail). */
const CONSOLE_MAX_BYTES = 1024 * 1024;

/** Nova's statuses Stratus servers can be listed by (`?status=`); REBOOT is an ACTIVE server rebooting. */
const LISTABLE_STATUSES = ['BUILD', 'ACTIVE', 'SHUTOFF', 'ERROR'] as const;

type Json = Record<string, unknown>;

const bad = (message: string) => new OpenStackError(400, message);

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The one object a Nova body wraps (`{"server": {...}}`); explicit nulls inside are absent values (G12). */
function wrapped(req: Request, key: string): Json {
  const body: unknown = req.body;
  if (!isObject(body) || !isObject(body[key])) throw bad(`Invalid input: the body must be a JSON object {"${key}": {...}}.`);
  return body[key];
}

function optionalString(o: Json, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(`Invalid input for field/attribute ${where}${key}: must be a string.`);
  return v;
}

/** A reference as Nova takes it: an id, or a URL ending in one (`http://…/flavors/<id>`); numbers are ids too. */
function reference(o: Json, key: string): string | undefined {
  const v = o[key];
  if (typeof v === 'number') return String(v);
  const s = optionalString(o, key, '');
  return s === undefined ? undefined : (s.split('/').pop() ?? s);
}

function param(req: Request, name: string): string {
  return req.params[name] as string;
}

/** `networks` of a create: a list of {uuid[, fixed_ip]} or {port}, or "none"; [] and absent mean no NIC. */
function networksOf(server: Json): NonNullable<CreateServerBody['networks']> {
  const v = server.networks;
  if (v === undefined || v === null || v === 'none') return [];
  if (v === 'auto') throw bad('Stratus does not allocate networks automatically: pass networks [{"uuid": …}] or [{"port": …}], or "none".');
  if (!Array.isArray(v)) throw bad('Invalid input for field/attribute networks: must be a list, "auto" or "none".');
  return v.map((n: unknown, i) => {
    if (!isObject(n)) throw bad(`Invalid input for field/attribute networks[${i}]: must be an object.`);
    const uuid = optionalString(n, 'uuid', `networks[${i}].`);
    const port = optionalString(n, 'port', `networks[${i}].`);
    const fixedIp = optionalString(n, 'fixed_ip', `networks[${i}].`);
    if (Boolean(uuid) === Boolean(port)) throw bad(`networks[${i}] needs exactly one of uuid, port.`);
    if (port) {
      if (fixedIp) throw bad(`networks[${i}]: fixed_ip cannot be given with a port (the port has its address).`);
      return { port_id: port };
    }
    return { network_id: uuid!, ...(fixedIp ? { fixed_ip: fixedIp } : {}) };
  });
}

/**
 * `block_device_mapping_v2` of a create: the image on the host's disk (source image, destination
 * local, boot_index 0: what the CLI always sends with --image), new blank volumes (source blank,
 * destination volume, volume_size) and existing volumes (source volume, uuid). Returns the image it
 * names, if any, and the volumes.
 */
function blockDevicesOf(server: Json): { imageId?: string; volumes: NonNullable<CreateServerBody['volumes']> } {
  const v = server.block_device_mapping_v2;
  if (v === undefined || v === null) return { volumes: [] };
  if (!Array.isArray(v)) throw bad('Invalid input for field/attribute block_device_mapping_v2: must be a list.');
  let imageId: string | undefined;
  const volumes: NonNullable<CreateServerBody['volumes']> = [];
  for (const [i, raw] of v.entries()) {
    const at = `block_device_mapping_v2[${i}]`;
    if (!isObject(raw)) throw bad(`Invalid input for field/attribute ${at}: must be an object.`);
    const source = optionalString(raw, 'source_type', `${at}.`) ?? 'volume';
    const destination = optionalString(raw, 'destination_type', `${at}.`) ?? (source === 'image' ? 'local' : 'volume');
    const uuid = optionalString(raw, 'uuid', `${at}.`);
    const bootIndex = raw.boot_index === null || raw.boot_index === undefined ? null : Number(raw.boot_index);
    const deleteOnTermination = raw.delete_on_termination === true || raw.delete_on_termination === 'true';
    if (source === 'image' && destination === 'local') {
      if (bootIndex !== 0) throw bad(`${at}: an image on the local disk must be the boot device (boot_index 0).`);
      imageId = uuid;
    } else if (source === 'image') {
      throw bad(`${at}: Stratus boots from the image on the host's disk; a volume made from an image (source_type image, destination_type volume) is not supported. Boot with imageRef and add blank or existing volumes.`);
    } else if (destination !== 'volume') {
      throw bad(`${at}: destination_type ${destination} is not supported for source_type ${source} (only volume).`);
    } else if (bootIndex === 0) {
      throw bad(`${at}: Stratus cannot boot from a volume (boot_index 0); boot from an image and attach the volume.`);
    } else if (source === 'blank') {
      const size = Number(raw.volume_size);
      if (!Number.isInteger(size) || size < 1 || size > 16384) throw bad(`${at}: volume_size must be an integer from 1 to 16384 (GiB).`);
      volumes.push({ size_gb: size, delete_on_termination: deleteOnTermination });
    } else if (source === 'volume') {
      if (!uuid) throw bad(`${at}: uuid (the volume's id) is required for source_type volume.`);
      if (deleteOnTermination) throw bad(`${at}: delete_on_termination is not supported for an existing volume (Stratus deletes only the volumes a create made).`);
      volumes.push({ volume_id: uuid });
    } else {
      throw bad(`${at}: source_type ${source} is not supported (image, blank or volume).`);
    }
  }
  if (volumes.length > 8) throw bad('At most 8 volumes per server.');
  return { ...(imageId ? { imageId } : {}), volumes };
}

/** Nova's `POST /servers` body as the /v1 create (the same rules check it next). */
function createBodyOf(req: Request): CreateServerBody {
  const server = wrapped(req, 'server');
  const name = optionalString(server, 'name', '');
  if (!name || name.length > 64 || [...name].some((c) => c.charCodeAt(0) < 0x20)) throw bad('Invalid input for field/attribute name: 1 to 64 characters, no control characters.');
  for (const key of ['min_count', 'max_count'] as const) {
    const n = server[key];
    if (n !== undefined && n !== null && Number(n) !== 1) {
      throw bad(`${key} ${String(n)}: this API creates one server per request; create several with POST /v1/server-batches.`);
    }
  }
  const flavorId = reference(server, 'flavorRef');
  if (!flavorId) throw bad('Invalid input for field/attribute flavorRef: required.');
  const bdm = blockDevicesOf(server);
  const imageRef = reference(server, 'imageRef');
  const imageId = imageRef || bdm.imageId;
  if (!imageId) throw bad('Stratus boots servers from an image: imageRef (or a block_device_mapping_v2 entry with source_type image, destination_type local) is required.');
  if (imageRef && bdm.imageId && imageRef !== bdm.imageId) throw bad('imageRef and the block_device_mapping_v2 image differ.');
  const metadata = server.metadata ?? undefined;
  if (metadata !== undefined) {
    if (!isObject(metadata) || Object.keys(metadata).length > 64 || Object.values(metadata).some((v) => typeof v !== 'string' || v.length > 255)) {
      throw bad('Invalid input for field/attribute metadata: at most 64 string values of up to 255 characters.');
    }
  }
  const zone = optionalString(server, 'availability_zone', '');
  if (zone !== undefined && (zone.length < 1 || zone.length > 63)) throw bad('Invalid input for field/attribute availability_zone: 1 to 63 characters.');
  const networks = networksOf(server);
  if (networks.length > 8) throw bad('At most 8 networks per server.');
  // key_name, user_data, security_groups, config_drive, adminPass: accepted and not applied (no key
  // pairs, metadata service or security groups in Stratus); the server view shows key_name null.
  return {
    name,
    flavor_id: flavorId,
    image_id: imageId,
    networks,
    volumes: bdm.volumes,
    ...(metadata ? { metadata: metadata as Record<string, string> } : {}),
    ...(zone ? { availability_zone: zone } : {}),
  };
}

/** The service's field errors of a create, in Nova's words (a 400 "X could not be found." for a missing reference). */
function novaCreateError(err: unknown, body: CreateServerBody): unknown {
  if (!(err instanceof DomainError) || (err.status !== 400 && err.status !== 404)) return err;
  const field = err.fields[0]?.field ?? '';
  const item = /^body\.(networks|volumes)\[(\d+)\]/.exec(field);
  const index = Number(item?.[2]);
  if (field === 'body.flavor_id') return bad(`Flavor ${body.flavor_id} could not be found.`);
  if (field === 'body.image_id') return err.status === 404 ? bad(`Image ${body.image_id} could not be found.`) : bad(err.message);
  if (field.endsWith('.network_id')) return bad(`Network ${body.networks?.[index]?.network_id ?? ''} could not be found.`);
  if (field.endsWith('.port_id')) return bad(`Port id ${body.networks?.[index]?.port_id ?? ''} could not be found.`);
  if (field.endsWith('.volume_id')) return bad(`Volume ${body.volumes?.[index]?.volume_id ?? ''} could not be found.`);
  return bad(err.message);
}

export function novaRouter(deps: OpenStackDeps): Router {
  const compute = createComputeService(deps.db);
  const consoles = createConsoleService(conductorOf(deps), deps.config.console);
  const flavors = createFlavorService(deps.db);
  const commands = serverCommands(deps, compute);
  const publicUrl = deps.config.api.publicUrl;
  const router = Router({ mergeParams: true });

  const marker = (page: OsPage) => (page.marker ? { afterId: page.marker } : {});

  /** `<collection>_links` when the repository says there is a next page. */
  const links = (req: Request, collection: string, items: Array<{ id: string }>, page: OsPage, next: string | null) => {
    const l = next ? pageLinks(req, publicUrl, items, page) : [];
    return l.length > 0 ? { [`${collection}_links`]: l } : {};
  };

  const withOperation = (res: Response, operationId: string) => res.setHeader(OPERATION_HEADER, operationId);

  // ---- flavors ----

  const listFlavors = (detail: boolean) => async (req: Request, res: Response) => {
    const auth = callerOf(req);
    const page = osPage(req);
    const found = await flavors.list(auth, { limit: page.limit, ...marker(page) });
    // is_public: the SDK sends the literal `None` (G13); true/false filter as Nova does.
    const isPublic = typeof req.query.is_public === 'string' ? req.query.is_public.toLowerCase() : 'none';
    const items = found.items.filter((f) => !['true', 'false'].includes(isPublic) || String(f.isPublic) === isPublic);
    res.json({ flavors: items.map((f) => (detail ? flavorView(publicUrl, f) : flavorSummary(publicUrl, f))), ...links(req, 'flavors', found.items, page, found.next) });
  };
  router.get('/flavors', listFlavors(false));
  router.get('/flavors/detail', listFlavors(true));

  const flavorOr404 = async (req: Request) => {
    const id = param(req, 'flavor_id');
    return flavors.get(callerOf(req), id).catch((err: unknown) => {
      throw err instanceof NotFound ? new OpenStackError(404, `Flavor ${id} could not be found.`) : err;
    });
  };
  router.get('/flavors/:flavor_id', async (req, res) => {
    res.json({ flavor: flavorView(publicUrl, await flavorOr404(req)) });
  });
  router.get('/flavors/:flavor_id/os-extra_specs', async (req, res) => {
    await flavorOr404(req);
    res.json({ extra_specs: {} });
  });

  // ---- servers ----

  const views = async (req: Request, list: ServerDetails[]) => {
    const extras = await compute.viewExtras(list);
    return list.map((d) => serverView(publicUrl, callerOf(req), d, extras));
  };

  const listServers = (detail: boolean) => async (req: Request, res: Response) => {
    const auth = callerOf(req);
    const page = osPage(req);
    const name = typeof req.query.name === 'string' && req.query.name !== '' ? req.query.name : undefined;
    const status = typeof req.query.status === 'string' ? req.query.status.toUpperCase() : undefined;
    // Deleted servers are not listed, and no server is in a status Stratus does not have.
    if (status !== undefined && !(LISTABLE_STATUSES as readonly string[]).includes(status)) return void res.json({ servers: [] });
    const found = await compute.list(auth, {
      limit: page.limit,
      ...marker(page),
      // Nova's `name` is a regex; the clients filter exact matches themselves (G14), so a
      // case-insensitive substring (a regex without metacharacters) is what they need.
      ...(name ? { nameContains: name.replace(/^\^|\$$/g, '') } : {}),
      ...(status ? { status: status as (typeof LISTABLE_STATUSES)[number] } : {}),
    });
    const servers = found.items.map((d) => ({ id: d.server.id }));
    res.json({
      servers: detail ? await views(req, found.items) : found.items.map((d) => serverSummary(publicUrl, d)),
      ...links(req, 'servers', servers, page, found.next),
    });
  };
  router.get('/servers', listServers(false));
  router.get('/servers/detail', listServers(true));

  router.post('/servers', async (req, res) => {
    const auth = callerOf(req);
    const body = createBodyOf(req);
    const { server, operation, replayed } = await commands.create(auth, body, req.get('idempotency-key')).catch((err: unknown) => {
      throw novaCreateError(err, body);
    });
    if (!replayed) req.log.info({ server: server.id, operation: operation.id }, 'server create accepted (Nova API)');
    const self = novaLinks(publicUrl, 'servers', server.id);
    withOperation(res, operation.id);
    res.setHeader('Location', self[0]!.href);
    res.status(202).json({ server: { id: server.id, links: self, 'OS-DCF:diskConfig': 'MANUAL', security_groups: [] } });
  });

  router.get('/servers/:server_id', async (req, res) => {
    const [view] = await views(req, [await compute.show(callerOf(req), param(req, 'server_id'))]);
    res.json({ server: view });
  });

  router.delete('/servers/:server_id', async (req, res) => {
    const op = await commands.remove(callerOf(req), param(req, 'server_id'));
    withOperation(res, op.id);
    res.status(204).end();
  });

  router.post('/servers/:server_id/action', async (req, res) => {
    const auth = callerOf(req);
    const id = param(req, 'server_id');
    const body: unknown = req.body;
    if (!isObject(body) || Object.keys(body).length !== 1) throw bad('Invalid input: the body must name one action, e.g. {"os-stop": null}.');
    const [action, args] = Object.entries(body)[0]!;
    switch (action) {
      case 'os-start':
      case 'os-stop':
      case 'reboot': {
        if (action === 'reboot') {
          const type = isObject(args) && typeof args.type === 'string' ? args.type.toUpperCase() : undefined;
          if (type === undefined) throw bad("Missing argument 'type' for reboot (SOFT).");
          if (type === 'HARD') throw bad('Stratus reboots servers with ACPI only: use type SOFT (a HARD reboot is not supported).');
          if (type !== 'SOFT') throw bad(`Argument 'type' for reboot must be SOFT or HARD, not ${type}.`);
        }
        const op = await commands.power(auth, id, action === 'os-start' ? 'start' : action === 'os-stop' ? 'stop' : 'reboot');
        withOperation(res, op.id);
        return void res.status(202).end();
      }
      case 'os-getConsoleOutput': {
        const raw = isObject(args) ? args.length : undefined;
        const length = raw === undefined || raw === null ? undefined : Number(raw);
        if (length !== undefined && (!Number.isInteger(length) || length < -1)) throw bad('Invalid input for field/attribute length: must be an integer.');
        const server = await compute.get(auth, id);
        const { output } = await consoles.read(server, { maxBytes: CONSOLE_MAX_BYTES });
        if (length === undefined || length === -1) return void res.json({ output });
        const lines = output.split('\n');
        const trailing = output.endsWith('\n') ? lines.pop() : undefined;
        return void res.json({ output: length === 0 ? '' : lines.slice(-length).join('\n') + (trailing !== undefined ? '\n' : '') });
      }
      default:
        throw bad(`There is no such action: ${action}`);
    }
  });

  router.get('/servers/:server_id/ips', async (req, res) => {
    const d = await compute.show(callerOf(req), param(req, 'server_id'));
    res.json({ addresses: ipsOf(serverAddresses(d, await compute.viewExtras([d]))) });
  });
  router.get('/servers/:server_id/ips/:network', async (req, res) => {
    const d = await compute.show(callerOf(req), param(req, 'server_id'));
    const network = param(req, 'network');
    const addresses = ipsOf(serverAddresses(d, await compute.viewExtras([d])));
    if (!addresses[network]) throw new OpenStackError(404, `Network ${network} could not be found.`);
    res.json({ [network]: addresses[network] });
  });

  // Stratus has no security groups: nothing filters a server's traffic, and none is listed.
  router.get('/servers/:server_id/os-security-groups', async (req, res) => {
    await compute.get(callerOf(req), param(req, 'server_id'));
    res.json({ security_groups: [] });
  });

  /** The server's ports (Neutron's), as Nova's interface attachments. */
  router.get('/servers/:server_id/os-interface', async (req, res) => {
    const d = await compute.show(callerOf(req), param(req, 'server_id'));
    res.json({
      interfaceAttachments: d.ports.map((p) => ({
        port_id: p.id,
        net_id: p.networkId,
        mac_addr: p.mac,
        port_state: p.status,
        fixed_ips: [{ subnet_id: p.subnetId, ip_address: p.fixedIp }],
      })),
    });
  });

  // ---- availability zones: the zones of the hosts; a zone is available while one of its hosts is up and enabled ----

  const zonesView = (detail: boolean) => async (req: Request, res: Response) => {
    const admin = detail && hasRole(callerOf(req), 'admin');
    const zones = await compute.availabilityZones();
    res.json({
      availabilityZoneInfo: zones.map(({ zone, hosts }) => ({
        zoneName: zone,
        zoneState: { available: hosts.some((h) => h.status === 'up' && h.enabled) },
        hosts: admin
          ? Object.fromEntries(hosts.map((h) => [h.name, { 'nova-compute': { available: h.status === 'up', active: h.enabled, updated_at: isoMicros(h.lastSeenAt) } }]))
          : null,
      })),
    });
  };
  router.get('/os-availability-zone', zonesView(false));
  router.get('/os-availability-zone/detail', zonesView(true));

  // ---- key pairs: Stratus has none (key_name on a create is accepted and not applied) ----

  router.get('/os-keypairs', (_req, res) => {
    res.json({ keypairs: [] });
  });
  router.get('/os-keypairs/:name', (req) => {
    throw new OpenStackError(404, `Keypair ${param(req, 'name')} not found for user ${callerOf(req).user.id} (Stratus has no key pairs).`);
  });

  // ---- volume attachments ----

  router.get('/servers/:server_id/os-volume_attachments', async (req, res) => {
    const d = await compute.show(callerOf(req), param(req, 'server_id'));
    res.json({ volumeAttachments: d.volumes.map((v) => volumeAttachmentView(d.server.id, v)) });
  });

  router.get('/servers/:server_id/os-volume_attachments/:volume_id', async (req, res) => {
    const d = await compute.show(callerOf(req), param(req, 'server_id'));
    const volume = d.volumes.find((v) => v.id === param(req, 'volume_id'));
    if (!volume) throw new OpenStackError(404, `Volume ${param(req, 'volume_id')} is not attached to instance ${d.server.id}.`);
    res.json({ volumeAttachment: volumeAttachmentView(d.server.id, volume) });
  });

  router.post('/servers/:server_id/os-volume_attachments', async (req, res) => {
    const attachment = wrapped(req, 'volumeAttachment');
    const volumeId = optionalString(attachment, 'volumeId', 'volumeAttachment.');
    if (!volumeId) throw bad('Invalid input for field/attribute volumeAttachment.volumeId: required.');
    // `device` is a hint (the CLI sends null); like Nova, the first free device is used.
    const { operation, server, device } = await commands.attachVolume(callerOf(req), param(req, 'server_id'), volumeId).catch((err: unknown) => {
      throw err instanceof NotFound && err.fields[0]?.field === 'body.volume_id' ? new OpenStackError(404, `Volume ${volumeId} could not be found.`) : err;
    });
    withOperation(res, operation.id);
    res.json({ volumeAttachment: volumeAttachmentView(server.id, { id: volumeId, device }) });
  });

  router.delete('/servers/:server_id/os-volume_attachments/:volume_id', async (req, res) => {
    const op = await commands.detachVolume(callerOf(req), param(req, 'server_id'), param(req, 'volume_id'));
    withOperation(res, op.id);
    res.status(202).end();
  });

  // ---- instance actions: the server's operations (request_id = operation id = its Temporal workflow's) ----

  router.get('/servers/:server_id/os-instance-actions', async (req, res) => {
    const auth = callerOf(req);
    const server = await compute.get(auth, param(req, 'server_id'));
    const ops = await compute.operationsOf(auth, server.id);
    res.json({ instanceActions: ops.reverse().map((op) => instanceActionView(op, server.userId)) });
  });

  router.get('/servers/:server_id/os-instance-actions/:request_id', async (req, res) => {
    const auth = callerOf(req);
    const server = await compute.get(auth, param(req, 'server_id'));
    const op = (await compute.operationsOf(auth, server.id)).find((o) => o.id === param(req, 'request_id'));
    if (!op) throw new OpenStackError(404, `Action ${param(req, 'request_id')} on instance ${server.id} could not be found.`);
    const steps = storedProgress(op)?.steps ?? [];
    res.json({
      instanceAction: {
        ...instanceActionView(op, server.userId),
        events: steps.map((s) => ({
          event: s.name,
          start_time: maybe(s.started_at, isoMicros),
          finish_time: maybe(s.ended_at, isoMicros),
          result: s.status === 'done' ? 'Success' : s.status === 'failed' || s.status === 'compensated' ? 'Error' : null,
          traceback: null,
        })),
      },
    });
  });

  return router;
}

/** `GET /servers/{id}/ips` shows only version and addr. */
function ipsOf(addresses: Record<string, Array<Record<string, unknown>>>): Record<string, Array<{ version: unknown; addr: unknown }>> {
  return Object.fromEntries(Object.entries(addresses).map(([net, list]) => [net, list.map((a) => ({ version: a.version, addr: a.addr }))]));
}
