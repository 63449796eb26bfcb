/** Cinder v3 (block storage); mounted at /volume/v3/:project_id (mergeParams): not yet built; the router answers the service's 404 for every path. */
import { Router } from 'express';
import type { OpenStackDeps } from './index';

export function cinderRouter(_deps: OpenStackDeps): Router {
  return Router({ mergeParams: true });
}
