/**
 * Version discovery documents, served without a token (keystoneauth fetches them unauthenticated;
 * behind auth, microversion negotiation silently stops). Every document carries an absolute
 * `links[rel=self]` ending in `/`. Shapes differ per service and are what the clients parse:
 * Keystone's root is `{versions: {values: [...]}}`, the others' roots are `{versions: [...]}`,
 * Nova's versioned document is `{version: {...}}`, Cinder's `/v3/` is still a `versions` list.
 */
import { Router } from 'express';
import { MOUNTS, VERSIONED } from './catalog';
import type { MicroversionRange } from './microversion';

/** The microversions each service renders (a higher maximum only where each version's shape is rendered). */
export const COMPUTE_MICROVERSIONS: MicroversionRange = { min: '2.1', max: '2.1' };
export const VOLUME_MICROVERSIONS: MicroversionRange = { min: '3.0', max: '3.0' };

const UPDATED = '2026-12-01T00:00:00Z';

function self(href: string) {
  return [{ rel: 'self', href }];
}

export function discoveryRouter(publicUrl: string): Router {
  const r = Router();
  const url = (path: string) => `${publicUrl}${path}/`;

  // --- identity --------------------------------------------------------------------------
  const identityV3 = {
    id: 'v3.14',
    status: 'stable',
    updated: UPDATED,
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
    links: self(url(VERSIONED.identity)),
  };
  r.get([MOUNTS.identity, `${MOUNTS.identity}/`], (_req, res) => {
    res.status(300).json({ versions: { values: [identityV3] } });
  });
  r.get([VERSIONED.identity, `${VERSIONED.identity}/`], (_req, res) => {
    res.json({ version: identityV3 });
  });

  // --- compute ---------------------------------------------------------------------------
  const computeV21 = {
    id: 'v2.1',
    status: 'CURRENT',
    version: COMPUTE_MICROVERSIONS.max,
    min_version: COMPUTE_MICROVERSIONS.min,
    updated: UPDATED,
    links: self(url(VERSIONED.compute)),
  };
  r.get([MOUNTS.compute, `${MOUNTS.compute}/`], (_req, res) => {
    res.json({ versions: [computeV21] });
  });
  r.get([VERSIONED.compute, `${VERSIONED.compute}/`], (_req, res) => {
    res.json({
      version: {
        ...computeV21,
        'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' }],
      },
    });
  });

  // --- image -----------------------------------------------------------------------------
  const imageVersions = {
    versions: [{ id: 'v2.0', status: 'CURRENT', links: self(url(VERSIONED.image)) }],
  };
  r.get([MOUNTS.image, `${MOUNTS.image}/`, `${MOUNTS.image}/versions`], (_req, res) => {
    res.status(300).json(imageVersions);
  });

  // --- network ---------------------------------------------------------------------------
  r.get([MOUNTS.network, `${MOUNTS.network}/`], (_req, res) => {
    res.json({ versions: [{ id: 'v2.0', status: 'CURRENT', links: self(url(VERSIONED.network)) }] });
  });
  r.get([VERSIONED.network, `${VERSIONED.network}/`], (_req, res) => {
    const base = `${publicUrl}${VERSIONED.network}`;
    res.json({
      resources: ['network', 'subnet', 'port'].map((name) => ({
        name,
        collection: `${name}s`,
        links: self(`${base}/${name}s`),
      })),
    });
  });

  // --- volume ----------------------------------------------------------------------------
  const volumeVersions = {
    versions: [
      {
        id: 'v3.0',
        status: 'CURRENT',
        version: VOLUME_MICROVERSIONS.max,
        min_version: VOLUME_MICROVERSIONS.min,
        updated: UPDATED,
        'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.volume+json;version=3' }],
        links: self(url(VERSIONED.volume)),
      },
    ],
  };
  r.get([MOUNTS.volume, `${MOUNTS.volume}/`], (_req, res) => {
    res.status(300).json(volumeVersions);
  });
  r.get([VERSIONED.volume, `${VERSIONED.volume}/`], (_req, res) => {
    res.json(volumeVersions);
  });
  return r;
}
