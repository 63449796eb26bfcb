/** Neutron v2.0 (network): not yet built; the router answers the service's 404 for every path. */
import { Router } from 'express';
import type { OpenStackDeps } from './index';

export function neutronRouter(_deps: OpenStackDeps): Router {
  return Router({ mergeParams: true });
}
