/** Contracts of the network activities (Neutron's job). */

/** A Stratus network as a host realizes it: a libvirt NAT network with a bridge and DHCP. */
export interface HostNetwork {
  networkId: string;
  /** libvirt network name: `stratus-<first 8 hex of the network id>`. */
  libvirtName: string;
  /** Linux bridge name (≤ 15 chars): `stb-<first 8 hex>`. */
  bridge: string;
  /** The subnet: CIDR, gateway (the host's address on the bridge), prefix length, DHCP range. */
  cidr: string;
  gatewayIp: string;
  prefix: number;
  dhcpStart: string;
  dhcpEnd: string;
}

export interface NetworkRequest {
  /** Either a network to allocate a new port on, or an existing port to bind. */
  networkId?: string;
  portId?: string;
  /** A fixed IP on that network (optional). */
  fixedIp?: string;
}
