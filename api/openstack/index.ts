/**
 * The OpenStack-compatible surface, on the API's port beside `/v1`, so the `openstack` CLI,
 * openstacksdk, Ansible and Terraform drive Stratus unchanged (see docs and
 * ../shared/notes/openstack-compat.md for what the clients need):
 *
 *   /identity        Keystone v3   (keystone.ts)
 *   /compute/v2.1    Nova v2.1     (nova.ts)
 *   /image/v2        Glance v2     (glance.ts)
 *   /networking/v2.0 Neutron v2.0  (neutron.ts)
 *   /volume/v3/{project_id}  Cinder v3  (cinder.ts)
 *
 * It is a translation at the edge: each router parses the OpenStack request, calls the same
 * component services (and starts the same workflows) as `/v1`, and renders the OpenStack shape. No
 * rule lives here. Discovery documents need no token; everything else takes `X-Auth-Token`. Each
 * service answers its own error shape (errors.ts), parses its own JSON (so a malformed body is that
 * service's 400) and is not validated against openapi/stratus.yaml (which describes `/v1`).
 */
import express, { Router, type RequestHandler } from 'express';
import type { Config } from '../../core/config';
import type { IdentityService } from '../../services/identity';
import type { QuotaLimits } from '../../services/compute';
import { rejectNulCharacters } from '../body';
import type { OperationDeps } from '../operations';
import type { ImageRoutesDeps } from '../routes/images';
import { tokenAuth } from './auth';
import { MOUNTS, VERSIONED } from './catalog';
import { cinderRouter } from './cinder';
import { COMPUTE_MICROVERSIONS, discoveryRouter, VOLUME_MICROVERSIONS } from './discovery';
import { openstackErrors, openstackNotFound, type ServiceKind } from './errors';
import { glanceRouter } from './glance';
import { keystoneRouter } from './keystone';
import { negotiateMicroversion } from './microversion';
import { neutronRouter } from './neutron';
import { novaRouter } from './nova';

export interface OpenStackDeps extends OperationDeps {
  config: OperationDeps['config'] & Pick<Config, 'api' | 'console'>;
  identity: IdentityService;
  quotaDefaults: QuotaLimits;
  images: Pick<ImageRoutesDeps, 'store' | 'signer'>;
}

/**
 * The paths the compat surface owns (the /v1 validator and the /v1 404 stay out of them): the API
 * enters its router only for these. Case-insensitive, as Express routes.
 */
export const OPENSTACK_PATHS = new RegExp(`^(${Object.values(MOUNTS).join('|')})(/|$)`, 'i');

export function openstackRouter(deps: OpenStackDeps): Router {
  const root = Router();
  root.use(discoveryRouter(deps.config.api.publicUrl));

  /** One service: its JSON, its token check (unless `open`), its routes, its 404 and its error shape. */
  const service = (kind: ServiceKind, routes: Router, before: RequestHandler[] = [], open = false): Router => {
    const r = Router({ mergeParams: true });
    r.use(express.json({ limit: '1mb' }), rejectNulCharacters);
    if (!open) r.use(tokenAuth(deps.identity));
    r.use(...before, routes);
    r.use(openstackNotFound(kind));
    r.use(openstackErrors(kind));
    return r;
  };

  root.use(VERSIONED.identity, service('identity', keystoneRouter(deps), [], true));
  root.use(VERSIONED.compute, service('compute', novaRouter(deps), [negotiateMicroversion('compute', COMPUTE_MICROVERSIONS)]));
  root.use(VERSIONED.image, service('image', glanceRouter(deps)));
  root.use(VERSIONED.network, service('network', neutronRouter(deps)));
  root.use(`${VERSIONED.volume}/:project_id`, service('volume', cinderRouter(deps), [negotiateMicroversion('volume', VOLUME_MICROVERSIONS)]));

  // Anything else under a service's prefix (another version, a typo) is that service's 404.
  for (const [kind, mount] of Object.entries(MOUNTS) as Array<[ServiceKind, string]>) {
    root.use(mount, openstackNotFound(kind), openstackErrors(kind));
  }
  return root;
}
