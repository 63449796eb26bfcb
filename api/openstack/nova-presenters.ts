/**
 * Nova v2.1 views (nova/api/openstack/compute/views/*.py at microversion 2.1): servers, flavors,
 * volume attachments, instance actions. Field names, types and timestamp formats are the contract
 * (gophercloud and Terraform map them by exact name and type; see §7.3 of the compat notes), so each
 * is rendered as Nova renders it, from what the compute service read.
 */
import { createHash } from 'node:crypto';
import { domainNameFor, type ServerDetails, type ServerViewExtras } from '../../services/compute';
import type { Flavor } from '../../services/flavors';
import { hasRole, type AuthContext } from '../../services/identity';
import type { startOperation } from '../operations';
import { MOUNTS, VERSIONED } from './catalog';
import { isoMicros, isoSecondsZ, maybe } from './time';

type Operation = Awaited<ReturnType<typeof startOperation>>;
type Link = { rel: string; href: string };

/** Absolute links of a Nova resource: `self` (versioned) and `bookmark` (unversioned), as Nova writes them. */
export function novaLinks(publicUrl: string, collection: string, id: string): Link[] {
  return [
    { rel: 'self', href: `${publicUrl}${VERSIONED.compute}/${collection}/${id}` },
    { rel: 'bookmark', href: `${publicUrl}${MOUNTS.compute}/${collection}/${id}` },
  ];
}

/** Nova's power_state integers (nova/compute/power_state.py) from libvirt's state names as the hosts report them. */
const POWER_STATE: Record<string, number> = { running: 1, blocked: 1, paused: 3, shutdown: 4, shutoff: 4, crashed: 6, pmsuspended: 7, suspended: 7 };

/** Nova's vm_state of each server status. */
const VM_STATE = { BUILD: 'building', ACTIVE: 'active', SHUTOFF: 'stopped', ERROR: 'error', DELETED: 'deleted' } as const;

/**
 * The status Nova shows: the server's, except while rebooting (REBOOT), as nova/api/openstack/common.py
 * maps (vm_state, task_state). Stratus reboots are ACPI (soft) reboots only.
 */
function novaStatus(status: keyof typeof VM_STATE, taskState: string | null): string {
  if (status === 'ACTIVE' && taskState === 'rebooting') return 'REBOOT';
  return status;
}

/** Nova's hostId: an opaque per-project hash of the host, so a project sees which of its servers share one. */
function hostId(projectId: string, host: string | null): string {
  return host ? createHash('sha224').update(`${projectId}${host}`).digest('hex') : '';
}

/** `GET /servers` (non-detail): id, name, links. */
export function serverSummary(publicUrl: string, d: Pick<ServerDetails, 'server'>) {
  return { id: d.server.id, name: d.server.name, links: novaLinks(publicUrl, 'servers', d.server.id) };
}

/** `addresses`: the server's fixed IPs by network name. */
export function serverAddresses(d: ServerDetails, x: Pick<ServerViewExtras, 'networkNames'>): Record<string, Array<Record<string, unknown>>> {
  const addresses: Record<string, Array<Record<string, unknown>>> = {};
  for (const p of d.ports) {
    const name = x.networkNames.get(p.networkId) ?? p.networkId;
    (addresses[name] ??= []).push({ version: 4, addr: p.fixedIp, 'OS-EXT-IPS:type': 'fixed', 'OS-EXT-IPS-MAC:mac_addr': p.mac });
  }
  return addresses;
}

/** The full server view (`GET /servers/{id}`, `/servers/detail`) at 2.1. */
export function serverView(publicUrl: string, auth: AuthContext, d: ServerDetails, x: ServerViewExtras) {
  const { server } = d;
  const launchedAt = x.launchedAt.get(server.id) ?? null;
  const zone = server.availabilityZone ?? (server.host ? (x.hostZones.get(server.host) ?? null) : null);
  return {
    id: server.id,
    name: server.name,
    status: novaStatus(server.status, server.taskState),
    tenant_id: server.projectId,
    user_id: server.userId ?? '',
    created: isoSecondsZ(server.createdAt),
    updated: isoSecondsZ(server.updatedAt),
    hostId: hostId(server.projectId, server.host),
    image: server.imageId ? { id: server.imageId, links: [{ rel: 'bookmark', href: `${publicUrl}${MOUNTS.compute}/images/${server.imageId}` }] } : '',
    flavor: { id: server.flavorId, links: [{ rel: 'bookmark', href: `${publicUrl}${MOUNTS.compute}/flavors/${server.flavorId}` }] },
    addresses: serverAddresses(d, x),
    metadata: server.metadata,
    // Stratus has no key pairs, config drives, access IPs or security groups: nothing was applied.
    key_name: null,
    accessIPv4: '',
    accessIPv6: '',
    config_drive: '',
    security_groups: [],
    progress: server.status === 'BUILD' ? 0 : 100,
    links: novaLinks(publicUrl, 'servers', server.id),
    'OS-DCF:diskConfig': 'MANUAL',
    'OS-EXT-STS:vm_state': VM_STATE[server.status],
    'OS-EXT-STS:task_state': server.taskState,
    'OS-EXT-STS:power_state': server.status === 'BUILD' ? 0 : (POWER_STATE[server.powerState ?? ''] ?? 0),
    'OS-EXT-AZ:availability_zone': zone ?? '',
    // Nova shows these to admins only (its default policy); so does /v1 with `host`.
    ...(hasRole(auth, 'admin')
      ? { 'OS-EXT-SRV-ATTR:host': server.host, 'OS-EXT-SRV-ATTR:hypervisor_hostname': server.host, 'OS-EXT-SRV-ATTR:instance_name': domainNameFor(server.id) }
      : {}),
    'OS-SRV-USG:launched_at': maybe(launchedAt, isoMicros),
    'OS-SRV-USG:terminated_at': maybe(server.deletedAt, isoMicros),
    'os-extended-volumes:volumes_attached': d.volumes.map((v) => ({ id: v.id })),
    ...(server.status === 'ERROR' && server.fault
      ? { fault: { code: 500, message: server.fault.message, created: isoSecondsZ(server.updatedAt), details: `${server.fault.code} in step ${server.fault.step}` } }
      : {}),
  };
}

/** A flavor at 2.1 (`GET /flavors/detail`, `/flavors/{id}`). Stratus flavors have no ephemeral or swap disk. */
export function flavorView(publicUrl: string, f: Flavor) {
  return {
    id: f.id,
    name: f.name,
    ram: f.ramMb,
    vcpus: f.vcpus,
    disk: f.diskGb,
    'OS-FLV-EXT-DATA:ephemeral': 0,
    swap: '',
    rxtx_factor: 1.0,
    'os-flavor-access:is_public': f.isPublic,
    'OS-FLV-DISABLED:disabled': false,
    links: novaLinks(publicUrl, 'flavors', f.id),
  };
}

export function flavorSummary(publicUrl: string, f: Flavor) {
  return { id: f.id, name: f.name, links: novaLinks(publicUrl, 'flavors', f.id) };
}

/** A volume attachment at 2.1: `id` is the volume id, as Nova's is. */
export function volumeAttachmentView(serverId: string, v: { id: string; device: string | null }) {
  return { id: v.id, serverId, volumeId: v.id, device: v.device ? `/dev/${v.device}` : null };
}

/** Nova's instance action names of Stratus operation kinds. */
const ACTION_NAMES: Record<string, string> = { 'server.create': 'create', 'server.delete': 'delete', 'server.start': 'start', 'server.stop': 'stop', 'server.reboot': 'reboot' };

/** An instance action (`os-instance-actions`): one Stratus operation; request_id is its id (and names its Temporal workflow). */
export function instanceActionView(op: Operation, userId: string | null) {
  return {
    action: ACTION_NAMES[op.kind] ?? op.kind,
    instance_uuid: op.resourceId,
    request_id: op.id,
    user_id: userId,
    project_id: op.projectId,
    start_time: isoMicros(op.createdAt),
    message: op.status === 'failed' ? (op.error?.message ?? 'Error') : null,
  };
}
