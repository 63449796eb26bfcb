/**
 * Network activities on the conductor (Neutron server's job): ports and addresses for a server,
 * allocated by the database's IPAM (db/repositories/ports.ts), and how each network looks on a host.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Knex } from 'knex';
import { Conflict, DomainError, NotFound } from '../../core/errors';
import * as networks from '../../db/repositories/networks';
import * as ports from '../../db/repositories/ports';
import * as subnets from '../../db/repositories/subnets';
import type { PortOnHost } from '../compute/types';
import type { HostNetwork, NetworkRequest } from './types';

/** The libvirt network and Linux bridge names of a Stratus network (a bridge name has ≤ 15 chars). */
export function hostNetworkNames(networkId: string): { libvirtName: string; bridge: string } {
  const short = networkId.replace(/-/g, '').slice(0, 8);
  return { libvirtName: `stratus-${short}`, bridge: `stb-${short}` };
}

/** How a Stratus network is realized on a host. */
export function hostNetworkOf(networkId: string, subnet: subnets.Subnet): HostNetwork {
  const [, prefix] = subnet.cidr.split('/');
  const pools = subnet.allocationPools;
  return {
    networkId,
    ...hostNetworkNames(networkId),
    cidr: subnet.cidr,
    gatewayIp: subnet.gatewayIp ?? '',
    prefix: Number(prefix),
    dhcpStart: pools[0]?.start ?? '',
    dhcpEnd: pools[pools.length - 1]?.end ?? '',
  };
}

/** Domain errors become non-retryable failures with the error's kind as type (PortInUse, NotFound...). */
function businessFailure(err: unknown, type: string): never {
  if (err instanceof DomainError) throw ApplicationFailure.nonRetryable(err.message, type);
  throw err;
}

export function createNetworkControlActivities({ db }: { db: Knex }) {
  async function onHost(port: ports.Port): Promise<PortOnHost> {
    const subnet = await subnets.get(db, port.subnetId);
    if (!subnet) throw ApplicationFailure.nonRetryable(`subnet ${port.subnetId} is gone`, 'SubnetNotFound');
    return { portId: port.id, mac: port.mac, ip: port.fixedIp, network: hostNetworkOf(port.networkId, subnet) };
  }

  return {
    /**
     * One port per request: a new port (MAC + IP from IPAM) on a network, or an existing port bound to
     * the server. Idempotent: a retry returns the ports already bound to the server.
     */
    async allocatePorts(req: { serverId: string; projectId: string; requests: NetworkRequest[] }): Promise<PortOnHost[]> {
      const existing = await ports.listByDevice(db, req.serverId);
      if (existing.length === 0) {
        await db.transaction(async (trx) => {
          for (const r of req.requests) {
            try {
              if (r.portId) {
                await ports.bind(trx, r.portId, req.serverId);
              } else if (r.networkId) {
                const network = await networks.get(trx, r.networkId);
                if (!network) throw new NotFound(`network ${r.networkId} not found`);
                await ports.create(trx, {
                  projectId: req.projectId,
                  networkId: r.networkId,
                  ...(r.fixedIp ? { fixedIp: r.fixedIp } : {}),
                  deviceId: req.serverId,
                  deviceOwner: 'compute',
                  createdByServer: true,
                });
              }
            } catch (err) {
              businessFailure(err, err instanceof Conflict ? 'PortAllocationConflict' : 'PortAllocationFailed');
            }
          }
        });
      }
      const bound = await ports.listByDevice(db, req.serverId);
      return Promise.all(bound.map(onHost));
    },

    /** Deletes the ports the server created, unbinds the ones it was given. Idempotent. */
    async releasePorts({ serverId }: { serverId: string }): Promise<void> {
      for (const port of await ports.listByDevice(db, serverId)) {
        if (port.createdByServer) await ports.remove(db, port.id);
        else await ports.unbind(db, port.id);
      }
    },

    async portsOfServer({ serverId }: { serverId: string }): Promise<PortOnHost[]> {
      return Promise.all((await ports.listByDevice(db, serverId)).map(onHost));
    },
  };
}

export type NetworkControlActivities = ReturnType<typeof createNetworkControlActivities>;
