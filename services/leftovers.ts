/**
 * The ledger of leftovers (admins only): what undos could not clean up (a host that was down), which
 * the reconciler retries until done.
 */
import type { Knex } from 'knex';
import * as leftovers from '../db/repositories/leftovers';
import { requireAdmin, type AuthContext } from './identity';

export type Leftover = leftovers.Leftover;

export function createLeftoverService(db: Knex) {
  return {
    /** The pending ledger, or the done one, oldest first, at most `limit` entries. */
    list(auth: AuthContext, opts: { status: 'pending' | 'done'; limit: number }): Promise<Leftover[]> {
      requireAdmin(auth);
      return leftovers.list(db, opts);
    },
  };
}
