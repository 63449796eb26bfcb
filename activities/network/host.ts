/**
 * Network activities that run on a hypervisor host (Neutron's L2/DHCP agents): a Stratus network
 * becomes a libvirt NAT network (bridge + dnsmasq), a port becomes a DHCP reservation MAC -> IP on it.
 * No database: everything arrives as input. The compute host activities call `createNetworkHost`'s
 * plain functions; `createNetworkHostActivities` exposes the same as Temporal activities.
 *
 * Operations on one network are serialized within the process (`networkLocks`), so a boot that
 * realizes a port and a teardown that removes the network when it looks unused cannot interleave.
 */
import { InvalidInput } from '../../core/errors';
import type { Logger } from '../../core/log';
import type { DhcpHost, Hypervisor, NetworkSpec } from '../../libvirt';
import { LibvirtError } from '../../libvirt';
import { childElements, firstChild, parseXml, path } from '../../libvirt/xml';
import { asActivity } from '../fault-injection';
import type { HostNetwork } from './types';

/** Serializes async work per key (first come, first served). */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = before.then(() => mine);
    this.tails.set(key, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** One lock per libvirt network name, shared by every instance in this process. */
const networkLocks = new KeyedMutex();

export const isNotFound = (err: unknown): boolean => err instanceof LibvirtError && err.isNotFound;

/** The libvirt network for a Stratus network: NAT, the gateway on the bridge, a DHCP range, no reservations. */
export function hostNetworkSpec(net: HostNetwork, hosts: DhcpHost[] = []): NetworkSpec {
  return {
    name: net.libvirtName,
    bridge: net.bridge,
    forward: 'nat',
    ipv4: { address: net.gatewayIp, prefix: net.prefix, dhcp: { rangeStart: net.dhcpStart, rangeEnd: net.dhcpEnd, hosts } },
  };
}

/** Names of the libvirt networks a domain XML has interfaces on. */
export function domainNetworks(domainXml: string): string[] {
  const devices = path(parseXml(domainXml), 'devices');
  if (!devices) return [];
  return childElements(devices, 'interface')
    .filter((i) => i.attrs.type === 'network')
    .map((i) => firstChild(i, 'source')?.attrs.network)
    .filter((n): n is string => n !== undefined);
}

export interface NetworkHostDeps {
  hypervisor: Hypervisor;
  log: Logger;
}

/** Plain functions (errors as the hypervisor throws them), for other host activities to call. */
export function createNetworkHost({ hypervisor, log }: NetworkHostDeps) {
  /** Define (if absent) and start the network. An existing network is left as defined (its reservations kept). */
  /**
   * Start the network, defining it first if absent. Returns true when it was defined now, with
   * `firstHosts` already in its DHCP reservations: a reservation in the definition costs nothing,
   * while a live one on a running network costs ~0.4 s on QEMU hosts (libvirt reloads its firewall rules).
   */
  async function ensureNetworkUnlocked(net: HostNetwork, firstHosts: DhcpHost[] = []): Promise<boolean> {
    try {
      await hypervisor.startNetwork(net.libvirtName); // no-op if active
      return false;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await hypervisor.defineNetwork(hostNetworkSpec(net, firstHosts.map((h) => ({ ...h, mac: h.mac.toLowerCase() }))));
    await hypervisor.startNetwork(net.libvirtName);
    log.info({ network: net.libvirtName, bridge: net.bridge, cidr: net.cidr }, 'network defined and started');
    return true;
  }

  /**
   * Reserve host.ip for host.mac. The database's IPAM is the source of truth, so a reservation of
   * the same IP (or hostname) for another MAC is stale (a port freed while its host was away): it
   * is removed, and the add tried again. The add is tried first: reading the reservations means
   * parsing the network's XML, which holds every one of them, and doing that on each boot made a
   * network of n servers cost O(n) per boot under the network's lock (~10% of the process's main
   * thread at 4,400 servers on one network, bench:batch --count 10000).
   */
  async function addDhcpHostUnlocked(net: HostNetwork, host: DhcpHost): Promise<void> {
    const mac = host.mac.toLowerCase();
    try {
      await hypervisor.networkAddDhcpHost(net.libvirtName, { ...host, mac }); // no-op if already so
      return;
    } catch (err) {
      if (isNotFound(err) || err instanceof InvalidInput) throw err; // no network, or a bad MAC/IP: nothing stale would help
    }
    const current = await hypervisor.networkDhcpHosts(net.libvirtName);
    for (const h of current) {
      if (h.mac === mac) continue;
      if (h.ip === host.ip || (host.name !== undefined && h.name === host.name)) {
        log.warn({ network: net.libvirtName, stale: h, wanted: host }, 'removing a stale DHCP reservation');
        await hypervisor.networkRemoveDhcpHost(net.libvirtName, h.mac);
      }
    }
    await hypervisor.networkAddDhcpHost(net.libvirtName, { ...host, mac });
  }

  async function removeDhcpHostUnlocked(net: HostNetwork, mac: string): Promise<void> {
    try {
      await hypervisor.networkRemoveDhcpHost(net.libvirtName, mac);
    } catch (err) {
      // no network, or a MAC the driver refuses (it can never have been reserved): no reservation
      if (!isNotFound(err) && !(err instanceof InvalidInput)) throw err;
    }
  }

  async function removeNetworkIfUnusedUnlocked(net: HostNetwork): Promise<boolean> {
    const name = net.libvirtName;
    let hosts: DhcpHost[];
    try {
      hosts = await hypervisor.networkDhcpHosts(name);
    } catch (err) {
      if (isNotFound(err)) return false; // already gone
      throw err;
    }
    if (hosts.length > 0) return false;
    for (const domain of await hypervisor.listDomains()) {
      let xml: string;
      try {
        xml = await hypervisor.domainXml(domain, { inactive: true });
      } catch (err) {
        if (isNotFound(err)) continue; // undefined meanwhile
        throw err;
      }
      if (domainNetworks(xml).includes(name)) return false;
    }
    await hypervisor.undefineNetwork(name); // destroys first
    log.info({ network: name }, 'network unused: destroyed and undefined');
    return true;
  }

  const locked =
    <A extends unknown[], T>(fn: (net: HostNetwork, ...rest: A) => Promise<T>) =>
    (net: HostNetwork, ...rest: A): Promise<T> =>
      networkLocks.run(net.libvirtName, () => fn(net, ...rest));

  return {
    /** Define + start the libvirt network if absent or inactive. Idempotent. */
    ensureNetwork: locked(async (net: HostNetwork): Promise<void> => {
      await ensureNetworkUnlocked(net);
    }),
    /** Reserve the IP for the MAC (replacing stale reservations of that IP or name). Absent network: NotFound. */
    addDhcpHost: locked(addDhcpHostUnlocked),
    /** Remove the MAC's reservation; none, or no network, is fine. */
    removeDhcpHost: locked(removeDhcpHostUnlocked),
    /**
     * Destroy + undefine the network when no DHCP reservation remains and no defined domain has an
     * interface on it. Resolves true if it removed the network; absent is fine (false).
     */
    removeNetworkIfUnused: locked(removeNetworkIfUnusedUnlocked),
    /** ensureNetwork + addDhcpHost in one critical section (a concurrent teardown cannot remove the network between). */
    realizePort: locked(async (net: HostNetwork, host: DhcpHost): Promise<void> => {
      if (!(await ensureNetworkUnlocked(net, [host]))) await addDhcpHostUnlocked(net, host);
    }),
  };
}

export type NetworkHost = ReturnType<typeof createNetworkHost>;

/** The same operations as Temporal activities (task queue host.<name>); failures classified for Temporal. */
export function createNetworkHostActivities(deps: NetworkHostDeps) {
  const net = createNetworkHost(deps);
  return {
    ensureNetwork: (n: HostNetwork): Promise<void> => asActivity(() => net.ensureNetwork(n)),
    addDhcpHost: (n: HostNetwork, host: { mac: string; ip: string; name?: string }): Promise<void> =>
      asActivity(() => net.addDhcpHost(n, host)),
    removeDhcpHost: (n: HostNetwork, mac: string): Promise<void> => asActivity(() => net.removeDhcpHost(n, mac)),
    removeNetworkIfUnused: (n: HostNetwork): Promise<boolean> => asActivity(() => net.removeNetworkIfUnused(n)),
  };
}

export type NetworkHostActivities = ReturnType<typeof createNetworkHostActivities>;
