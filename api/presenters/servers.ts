/** A server as the API shows it (Nova's server view), from the details the compute service read. */
import type { Config } from '../../core/config';
import type { components } from '../../openapi/types';
import type { ServerDetails } from '../../services/compute';
import { hasRole, type AuthContext } from '../../services/identity';
import { temporalUiRunUrl } from '../../temporal/connection';
import { storedProgress } from '../operations';

type Schemas = components['schemas'];

const NO_FLAVOR = '00000000-0000-0000-0000-000000000000';

export function presentServer(config: Pick<Config, 'api' | 'temporal'>, auth: AuthContext, d: ServerDetails): Schemas['Server'] {
  const { server, flavor, latest } = d;
  const busy = server.status === 'BUILD' || server.taskState !== null;
  const base = config.api.publicUrl;
  return {
    id: server.id,
    name: server.name,
    status: server.status,
    task_state: server.taskState,
    power_state: server.powerState,
    ...(hasRole(auth, 'admin') ? { host: server.host } : {}),
    flavor: flavor
      ? { id: flavor.id, name: flavor.name, vcpus: flavor.vcpus, ram_mb: flavor.ramMb, disk_gb: flavor.diskGb }
      : { id: server.flavorId ?? NO_FLAVOR, name: '(deleted)', vcpus: 0, ram_mb: 0, disk_gb: 0 },
    image_id: server.imageId,
    addresses: d.ports.map((p) => ({ network_id: p.networkId, port_id: p.id, ip: p.fixedIp, mac_address: p.mac })),
    volumes_attached: d.volumes.map((v) => ({ id: v.id, device: v.device })),
    metadata: server.metadata,
    fault: server.fault,
    batch_id: server.batchId,
    // The step progress the operation's workflow wrote into its row (no workflow query per read).
    progress: busy && latest?.status === 'running' ? storedProgress(latest) : null,
    availability_zone: server.availabilityZone,
    group_id: d.groupId,
    ...(hasRole(auth, 'admin') ? { placement: server.placement } : {}),
    created_at: server.createdAt.toISOString(),
    updated_at: server.updatedAt.toISOString(),
    links: {
      self: `${base}/v1/servers/${server.id}`,
      ...(latest
        ? {
            operation: `${base}/v1/operations/${latest.id}`,
            temporal_ui: temporalUiRunUrl(config.temporal.uiUrl, config.temporal.namespace, latest.workflowId, latest.runId ?? ''),
          }
        : {}),
    },
  };
}
