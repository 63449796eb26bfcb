/** Flavors (Nova's sizes): everyone reads the public ones; admins also see private ones and alone change them. */
import type { Knex } from 'knex';
import { InvalidInput, NotFound } from '../core/errors';
import * as flavors from '../db/repositories/flavors';
import type { Page, PageRequest } from '../db/types';
import { hasRole, requireAdmin, type AuthContext } from './identity';

export type Flavor = flavors.Flavor;
export type NewFlavor = flavors.NewFlavor;

export function createFlavorService(db: Knex) {
  return {
    /** A private flavor is "not found" to non-admins, like another project's resources. */
    async get(auth: AuthContext, id: string): Promise<Flavor> {
      const flavor = await flavors.get(db, id);
      if (!flavor || (!flavor.isPublic && !hasRole(auth, 'admin'))) throw new NotFound(`flavor ${id} not found`);
      return flavor;
    },
    /** `afterId` (OpenStack's marker) continues after that flavor: InvalidInput naming `marker` if there is none. */
    async list(auth: AuthContext, page: PageRequest): Promise<Page<Flavor>> {
      const { afterId, ...rest } = page;
      const marker = afterId !== undefined ? await flavors.cursorAfter(db, afterId) : rest.marker;
      if (afterId !== undefined && !marker) throw new InvalidInput(`marker ${afterId} not found`, [{ field: 'marker', message: 'no such item in this list' }]);
      return flavors.list(db, { ...rest, marker, ...(hasRole(auth, 'admin') ? {} : { isPublic: true }) });
    },
    create(auth: AuthContext, input: NewFlavor): Promise<Flavor> {
      requireAdmin(auth);
      return flavors.create(db, input);
    },
    /** 409 while a server uses it. */
    async remove(auth: AuthContext, id: string): Promise<void> {
      requireAdmin(auth);
      await flavors.remove(db, id);
    },
  };
}
