/**
 * Networks (Neutron's rules): networks, subnets and ports, project-scoped by the visibility rule.
 * Subnet and port semantics (CIDR rules, pools, IPAM) live in the repositories, which allocate
 * addresses concurrency-safely in the database. A page of networks is read with its subnets in one
 * query.
 */
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { Conflict } from '../core/errors';
import * as networks from '../db/repositories/networks';
import * as ports from '../db/repositories/ports';
import * as quotas from '../db/repositories/quotas';
import * as subnets from '../db/repositories/subnets';
import type { Page, PageRequest } from '../db/types';
import type { AuthContext } from './identity';
import { listScopeFor, visibleOr404 } from './visibility';

export type Network = networks.Network;
export type Subnet = subnets.Subnet;
export type Port = ports.Port;
export type NewSubnet = Omit<subnets.NewSubnet, 'networkId' | 'projectId'>;
export type NetworkFilters = networks.NetworkFilters;
export type SubnetFilters = subnets.SubnetFilters;
export type PortFilters = ports.PortFilters;

/** Which project's resources a list asks for (`?project_id=`; the caller's own, or any for admins, when omitted). */
interface Scoped {
  projectId?: string;
}

const EMPTY = { items: [], next: null };

/** A network with the ids of its subnets (oldest first). */
export interface NetworkDetails {
  network: Network;
  subnetIds: string[];
}

export function createNetworkService(db: Knex, quotaDefaults: quotas.QuotaLimits) {
  async function getNetwork(auth: AuthContext, id: string, field?: string): Promise<Network> {
    return visibleOr404(auth, await networks.get(db, id), { kind: 'network', id, ...(field ? { field } : {}) });
  }
  async function getSubnet(auth: AuthContext, id: string): Promise<Subnet> {
    return visibleOr404(auth, await subnets.get(db, id), { kind: 'subnet', id });
  }
  async function getPort(auth: AuthContext, id: string): Promise<Port> {
    return visibleOr404(auth, await ports.get(db, id), { kind: 'port', id });
  }
  /** The subnets of a page of networks: one query whatever the page's length. */
  async function details(list: readonly Network[]): Promise<NetworkDetails[]> {
    const by = await subnets.listByNetworks(db, list.map((n) => n.id));
    return list.map((network) => ({ network, subnetIds: (by.get(network.id) ?? []).map((s) => s.id) }));
  }

  return {
    getNetwork,
    getSubnet,
    getPort,

    async showNetwork(auth: AuthContext, id: string): Promise<NetworkDetails> {
      const [one] = await details([await getNetwork(auth, id)]);
      return one!;
    },
    async listNetworks(auth: AuthContext, page: PageRequest & Scoped & { filters?: NetworkFilters }): Promise<Page<NetworkDetails>> {
      const scope = listScopeFor(auth, page.projectId);
      if (!scope) return EMPTY;
      const found = await networks.list(db, { ...page, ...scope });
      return { items: await details(found.items), next: found.next };
    },
    createNetwork(auth: AuthContext, name: string): Promise<Network> {
      return networks.create(db, { projectId: auth.project.id, name });
    },
    async renameNetwork(auth: AuthContext, id: string, name: string): Promise<NetworkDetails> {
      const [one] = await details([await networks.rename(db, (await getNetwork(auth, id)).id, name)]);
      return one!;
    },
    async deleteNetwork(auth: AuthContext, id: string): Promise<void> {
      await networks.remove(db, (await getNetwork(auth, id)).id);
    },

    async listSubnets(auth: AuthContext, page: PageRequest & Scoped & { networkId?: string; filters?: SubnetFilters }): Promise<Page<Subnet>> {
      const scope = listScopeFor(auth, page.projectId);
      return scope ? subnets.list(db, { ...page, ...scope }) : EMPTY;
    },
    /** A subnet belongs to its network's project, whoever (an admin) created it. */
    createSubnet(network: Network, input: NewSubnet): Promise<Subnet> {
      return subnets.create(db, { ...input, networkId: network.id, projectId: network.projectId });
    },
    async renameSubnet(auth: AuthContext, id: string, name: string): Promise<Subnet> {
      return subnets.rename(db, (await getSubnet(auth, id)).id, name);
    },
    async deleteSubnet(auth: AuthContext, id: string): Promise<void> {
      await subnets.remove(db, (await getSubnet(auth, id)).id);
    },

    async listPorts(auth: AuthContext, page: PageRequest & Scoped & { networkId?: string; deviceId?: string; filters?: PortFilters }): Promise<Page<Port>> {
      const scope = listScopeFor(auth, page.projectId);
      return scope ? ports.list(db, { ...page, ...scope }) : EMPTY;
    },
    /**
     * Ports on a project's network belong to that project, so its members can clean them up; a port
     * counts against that project's quota from the moment it exists (403 naming ports when over).
     */
    createPort(network: Network, fixedIp: string | undefined, name?: string): Promise<Port> {
      const portId = randomUUID();
      return db.transaction(async (trx) => {
        await quotas.reserve(trx, { projectId: network.projectId, ownerId: portId, amounts: { ports: 1 }, defaults: quotaDefaults });
        await quotas.commit(trx, portId);
        return ports.create(trx, {
          id: portId,
          projectId: network.projectId,
          networkId: network.id,
          ...(fixedIp !== undefined ? { fixedIp } : {}),
          ...(name !== undefined ? { name } : {}),
        });
      });
    },
    async renamePort(auth: AuthContext, id: string, name: string): Promise<Port> {
      return ports.rename(db, (await getPort(auth, id)).id, name);
    },
    async deletePort(auth: AuthContext, portId: string): Promise<void> {
      const { id } = await getPort(auth, portId);
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
    },
  };
}

export type NetworkService = ReturnType<typeof createNetworkService>;
