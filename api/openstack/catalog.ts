/**
 * Where each OpenStack service lives on the API's port, and the service catalog a Keystone token
 * carries. URLs are absolute, built from STRATUS_PUBLIC_URL. No mount path holds a `v<digit>`
 * before the service's own version (gophercloud takes the first `v[0-9.]+` of a path as the
 * version); image and network are unversioned (the clients append `v2`/`v2.0` themselves).
 */
import { createHash } from 'node:crypto';

/** Path prefixes on the API's port. */
export const MOUNTS = {
  identity: '/identity',
  compute: '/compute',
  image: '/image',
  network: '/networking',
  volume: '/volume',
} as const;

/** The versioned roots the routers are mounted at. */
export const VERSIONED = {
  identity: `${MOUNTS.identity}/v3`,
  compute: `${MOUNTS.compute}/v2.1`,
  image: `${MOUNTS.image}/v2`,
  network: `${MOUNTS.network}/v2.0`,
  volume: `${MOUNTS.volume}/v3`,
} as const;

export interface CatalogEndpoint {
  id: string;
  interface: 'public';
  region: string;
  region_id: string;
  url: string;
}

export interface CatalogEntry {
  id: string;
  type: string;
  name: string;
  endpoints: CatalogEndpoint[];
}

/** A stable id for a catalog row (the same on every token and every restart). */
function stableId(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 32);
}

/** The catalog for a token scoped to `projectId` (Cinder's URL carries the project, as Cinder's does). */
export function serviceCatalog(publicUrl: string, region: string, projectId: string): CatalogEntry[] {
  const services: Array<[type: string, name: string, url: string]> = [
    ['identity', 'keystone', `${publicUrl}${MOUNTS.identity}`],
    ['compute', 'nova', `${publicUrl}${VERSIONED.compute}`],
    ['image', 'glance', `${publicUrl}${MOUNTS.image}`],
    ['network', 'neutron', `${publicUrl}${MOUNTS.network}`],
    // Both names: the SDK looks for `block-storage`, older clients and gophercloud also for `volumev3`.
    ['block-storage', 'cinder', `${publicUrl}${VERSIONED.volume}/${projectId}`],
    ['volumev3', 'cinderv3', `${publicUrl}${VERSIONED.volume}/${projectId}`],
  ];
  return services.map(([type, name, url]) => ({
    id: stableId('service', type),
    type,
    name,
    endpoints: [{ id: stableId('endpoint', type, url), interface: 'public', region, region_id: region, url }],
  }));
}
