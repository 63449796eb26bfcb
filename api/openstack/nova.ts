/** Nova v2.1 (compute): not yet built; the router answers the service's 404 for every path. */
import { Router } from 'express';
import type { OpenStackDeps } from './index';

export function novaRouter(_deps: OpenStackDeps): Router {
  return Router({ mergeParams: true });
}
