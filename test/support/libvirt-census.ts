/**
 * What a hypervisor holds, as sorted lists of strings, so that "nothing leaked" is one assertion:
 *
 *   const before = await census(hypervisor, pool);
 *   ... boot, fail, compensate ...
 *   expect(await census(hypervisor, pool)).toEqual(before);
 *
 * test:///default keeps one state per process, shared with other test files in the same jest
 * worker: compare a census with an earlier one, never with an absolute expectation, or pass
 * `only` to keep the names of one test (e.g. a random run prefix).
 */
import type { Hypervisor } from '../../libvirt';

export interface Census {
  /** Domain names, running or not. */
  domains: string[];
  /** Volume names in the pool. */
  volumes: string[];
  /** Network names, active or not. */
  networks: string[];
  /** DHCP reservations of every network, as `<network> <mac> <ip>`. */
  dhcpHosts: string[];
}

export interface CensusOptions {
  /** Keep only the things whose name (for DHCP hosts: whose network's name) passes. */
  only?: (name: string) => boolean;
}

export async function census(hypervisor: Hypervisor, pool: string, opts: CensusOptions = {}): Promise<Census> {
  const keep = opts.only ?? (() => true);
  const sorted = (xs: string[]): string[] => xs.filter(keep).sort();
  const [domains, volumes, networks] = await Promise.all([
    hypervisor.listDomains(),
    hypervisor.listVolumes(pool),
    hypervisor.listNetworks(),
  ]);
  const dhcpHosts: string[] = [];
  for (const network of sorted(networks)) {
    const hosts = await hypervisor.networkDhcpHosts(network).catch((err: { isNotFound?: boolean }) => {
      if (err.isNotFound) return []; // removed meanwhile
      throw err;
    });
    for (const h of hosts) dhcpHosts.push(`${network} ${h.mac} ${h.ip}`);
  }
  return {
    domains: sorted(domains),
    volumes: sorted(volumes.map((v) => v.name)),
    networks: sorted(networks),
    dhcpHosts: dhcpHosts.sort(),
  };
}
